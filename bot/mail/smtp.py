"""Sending mail over SMTP with the standard library's ``smtplib`` (``JIT_SMTP_URL``).

The URL says how jit reaches the mail server:

=================================================  ==================================================================
``smtp://[user:password@]host[:587]``              submission with STARTTLS, which is required: a server that does
                                                   not offer it gets neither the credentials nor the mail
``smtps://[user:password@]host[:465]``             TLS from the first byte (implicit TLS, RFC 8314)
``smtp+insecure://host[:25]``                      no TLS at all: only for a relay on the same host or pod (a local
                                                   postfix, the sandbox's own server), which then sends it on; it
                                                   takes no credentials, since they would cross the network in clear
=================================================  ==================================================================

User name and password are percent-decoded (``p%40ss`` is ``p@ss``). TLS checks the server's certificate and its
name against the system's CAs, and the CAs in ``ca_file`` too when given (``JIT_SMTP_CA_FILE``: a private CA).

One connection per message: approval mail is a handful of messages per request, sent by one follower, so the
handshake (TCP, TLS, AUTH: tens of milliseconds) costs nothing that matters, while a connection kept open would
need a check before each use and a reconnect after the server's idle timeout (often a minute), and would turn one
server restart into errors on the next messages. Each message starts from a fresh, verified session.

Failures raise :class:`~bot.core.errors.DeliveryError`: ``transient`` (try again later) when the server cannot be
reached, times out, drops the connection or answers 4xx; permanent when it answers 5xx (recipient or sender
refused, login refused) or its certificate is not trusted. The message names ``host:port`` and the server's code
and words; it never holds the URL or the password (nor does any ``repr`` here), and it is not chained to the
``smtplib`` exception it came from.

Imports only the standard library and ``bot.core``.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import parseaddr
from urllib.parse import unquote, urlsplit

from bot.core.errors import DeliveryError

#: The default port of each scheme: submission (RFC 6409), submissions (RFC 8314), and SMTP's own.
PORTS = {'smtp': 587, 'smtps': 465, 'smtp+insecure': 25}
#: How much of a server's reply an error quotes.
REPLY_CHARS = 200
_CONTROL = re.compile('[\x00-\x1f\x7f-\x9f]')


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """A parsed ``JIT_SMTP_URL``; its ``repr`` leaves the password out."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        """``host:port`` as errors name the server (``[::1]:25`` for an IPv6 address)."""
        return f'[{self.host}]:{self.port}' if ':' in self.host else f'{self.host}:{self.port}'


def parse_smtp_url(url: str) -> SmtpTarget:
    """Read a ``JIT_SMTP_URL``.

    Raises:
        ValueError: it cannot be used; the message quotes nothing of the URL but its scheme, as the URL may
            hold a password.
    """
    scheme = url.partition('://')[0].lower() if '://' in url else ''
    if scheme not in PORTS:
        shown = f'{scheme!r}' if scheme.isascii() and len(scheme) < 20 and scheme.replace('+', '').isalnum() else '?'
        raise ValueError(f'must start with smtp://, smtps:// or smtp+insecure:// (not {shown})')
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("has a port that is not a number from 1 to 65535 (a password's '/', '?', '#' and '@' must "
                         'be percent-encoded: %2F, %3F, %23, %40)')  # fmt: skip
    host = parts.hostname or ''
    if not host or not re.fullmatch(r'[A-Za-z0-9.:_-]+', host):
        raise ValueError(
            "names no host (a password's '/', '?', '#' and '@' must be percent-encoded: %2F, %3F, %23, %40)"
        )
    if parts.path not in ('', '/') or parts.query or parts.fragment:
        raise ValueError("has a path, query or fragment: it is only [user:password@]host[:port] (a password's '/', "
                         "'?' and '#' must be percent-encoded: %2F, %3F, %23)")  # fmt: skip
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if scheme == 'smtp+insecure' and (username or password):
        raise ValueError('smtp+insecure:// takes no user name or password: they would cross the network in clear '
                         '(use smtp:// with STARTTLS, or smtps://)')  # fmt: skip
    if password is not None and not username:
        raise ValueError('has a password but no user name')
    if not (username or '').isascii() or not (password or '').isascii():
        raise ValueError('has a user name or password that is not ASCII (SMTP AUTH PLAIN and LOGIN send ASCII)')
    return SmtpTarget(scheme=scheme, host=host, port=port or PORTS[scheme], username=username, password=password)


def envelope_sender(sender: str) -> str:
    """The address of ``sender`` (``jit <jit@example.com>`` or ``jit@example.com``).

    Raises:
        ValueError: it holds no address (``name@domain``).
    """
    address = parseaddr(sender)[1]
    if '@' not in address.strip('@') or any(c.isspace() or _CONTROL.match(c) for c in address):
        raise ValueError('is not an email address (jit@example.com, or jit <jit@example.com>)')
    return address


class SmtpMailer:
    """Sends messages through one SMTP server, as ``sender`` (the envelope's MAIL FROM).

    Build it with :meth:`from_url`. See the module docstring for the URL, TLS and errors.
    """

    def __init__(self, target: SmtpTarget, *, sender: str, ca_file: str | None = None, timeout: float = 10.0) -> None:
        self._target, self._sender, self._timeout = target, envelope_sender(sender), timeout
        self._trusted = 'the system CAs and JIT_SMTP_CA_FILE' if ca_file else 'the system CAs'
        self._tls = ssl.create_default_context()  # the system's CAs; certificate and host name checked
        if ca_file:
            self._tls.load_verify_locations(cafile=ca_file)

    @classmethod
    def from_url(cls, url: str, *, sender: str, ca_file: str | None = None, timeout: float = 10.0) -> SmtpMailer:
        """A mailer for ``JIT_SMTP_URL`` ``url``.

        Args:
            url: ``smtp://``, ``smtps://`` or ``smtp+insecure://`` (see the module docstring).
            sender: ``JIT_MAIL_FROM``; its address is the envelope sender.
            ca_file: CA certificates (PEM) to trust besides the system's.
            timeout: seconds each network step may take.

        Raises:
            ValueError: the URL or the sender cannot be used (the message quotes neither).
        """
        return cls(parse_smtp_url(url), sender=sender, ca_file=ca_file, timeout=timeout)

    def __repr__(self) -> str:
        return f'SmtpMailer({self._target.scheme}://{self._target.where}, sender={self._sender!r})'

    def send(self, msg: EmailMessage) -> None:
        """Send ``msg`` to the addresses in its ``To`` and ``Cc``; returns once the server has taken it.

        Raises:
            DeliveryError: not sent (``transient``: worth trying again later).
            ValueError: the message has no recipient.
        """
        recipients = [a.addr_spec for name in ('To', 'Cc') if msg[name] is not None for a in msg[name].addresses]
        if not recipients:
            raise ValueError('the message has no recipient (To)')
        try:
            refused = self._deliver(msg, recipients)
        except DeliveryError:
            raise
        except (smtplib.SMTPException, OSError) as exc:  # ssl.SSLError and TimeoutError are OSErrors
            raise self._error(exc) from None
        if refused:  # some recipients refused, the others took it: say which
            raise self._refused(refused)

    def _deliver(self, msg: EmailMessage, recipients: list[str]) -> dict[str, tuple[int, bytes]]:
        target = self._target
        smtp: smtplib.SMTP
        if target.scheme == 'smtps':
            smtp = smtplib.SMTP_SSL(target.host, target.port, timeout=self._timeout, context=self._tls)
        else:
            smtp = smtplib.SMTP(target.host, target.port, timeout=self._timeout)
        try:
            if target.scheme == 'smtp':
                code, reply = smtp.ehlo()  # no HELO to fall back on: STARTTLS is an extension of EHLO's
                if not 200 <= code < 300:
                    raise smtplib.SMTPHeloError(code, reply)
                if not smtp.has_extn('starttls'):
                    raise DeliveryError(
                        f'SMTP {target.where} does not offer STARTTLS: jit sends neither credentials nor mail in '
                        'clear (smtps:// for TLS from the start; smtp+insecure:// only for a relay on the same host)',
                        transient=False,
                    )
                smtp.starttls(context=self._tls)
                smtp.ehlo()
            if target.username:
                smtp.login(target.username, target.password or '')
            return smtp.send_message(msg, from_addr=self._sender, to_addrs=recipients)
        finally:
            _close(smtp)

    def _refused(self, refused: dict[str, tuple[int, bytes]]) -> DeliveryError:
        codes = [code for code, _ in refused.values()]
        address, (code, reply) = next(iter(refused.items()))
        words = f'refused the recipient {address}' if len(refused) == 1 else f'refused {len(refused)} recipients'
        return DeliveryError(self._say(f'{words}: {code} {self._reply(reply)}'),
                             transient=all(400 <= c < 500 for c in codes))  # fmt: skip

    def _error(self, exc: smtplib.SMTPException | OSError) -> DeliveryError:
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            return self._refused(exc.recipients)
        if isinstance(exc, smtplib.SMTPResponseException):
            what = {
                smtplib.SMTPAuthenticationError: 'refused the login',
                smtplib.SMTPSenderRefused: f'refused the sender {self._sender}',
                smtplib.SMTPDataError: 'refused the message',
                smtplib.SMTPConnectError: 'refused the session',
                smtplib.SMTPHeloError: 'refused the greeting (EHLO)',
            }.get(type(exc), 'answered')
            code = exc.smtp_code
            return DeliveryError(self._say(f'{what}: {code} {self._reply(exc.smtp_error)}'),
                                 transient=400 <= code < 500)  # fmt: skip
        if isinstance(exc, smtplib.SMTPServerDisconnected):  # smtplib's word for a read that failed, too
            if 'timed out' in str(exc):
                return DeliveryError(self._say(f'did not answer within {self._timeout:g} s'), transient=True)
            return DeliveryError(self._say('closed the connection'), transient=True)
        if isinstance(exc, smtplib.SMTPException):  # no suitable AUTH method, SMTPUTF8 not offered...
            return DeliveryError(self._say(self._reply(str(exc))), transient=False)
        if isinstance(exc, ssl.SSLCertVerificationError):
            why = f'{exc.verify_message} (checked against {self._trusted})'
            return DeliveryError(self._say(f'has a certificate that is not trusted: {why}'), transient=False)
        if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return DeliveryError(self._say('closed the connection during the TLS handshake'), transient=True)
        if isinstance(exc, ssl.SSLError):
            return DeliveryError(self._say(f'TLS failed: {exc.reason or exc.__class__.__name__}'), transient=False)
        if isinstance(exc, TimeoutError):
            return DeliveryError(self._say(f'did not answer within {self._timeout:g} s'), transient=True)
        if isinstance(exc, ConnectionRefusedError):
            return DeliveryError(self._say('refused the connection'), transient=True)
        return DeliveryError(self._say(f'cannot be reached: {exc.strerror or exc.__class__.__name__}'), transient=True)

    def _say(self, words: str) -> str:
        return self._scrub(f'SMTP {self._target.where} {words}')

    def _reply(self, reply: bytes | str) -> str:
        text = reply.decode('utf-8', 'replace') if isinstance(reply, bytes) else reply
        return ' '.join(_CONTROL.sub(' ', text).split())[:REPLY_CHARS]

    def _scrub(self, text: str) -> str:
        """``text`` without the password, should a server have echoed it."""
        password = self._target.password
        return text.replace(password, '***') if password and len(password) >= 3 else text


def _close(smtp: smtplib.SMTP) -> None:
    """QUIT, then close; a server that already took the message may fail to answer QUIT: that is no failure."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
