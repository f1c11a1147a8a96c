"""A real SMTP server for the tests (aiosmtpd on a loopback port, in a thread of the test process).

It asks what production relays ask: in the default mode (``starttls``) nothing but EHLO, NOOP and QUIT before
STARTTLS, and AUTH (PLAIN or LOGIN, with :attr:`SmtpServer.username` and :attr:`SmtpServer.password`) before
MAIL. Its certificate names ``localhost``, ``127.0.0.1`` and ``::1`` and is signed by a CA of its own, made with
``cryptography`` for each server: :attr:`SmtpServer.ca_file` is what a client is told to trust (``ca_file=``), so
a client that verifies against the system CAs alone, or another CA (:func:`make_ca_file`), refuses it.

Other modes: ``smtps`` (TLS from the first byte, port 465's way) and ``plain`` (no TLS offered at all; AUTH
offered in clear and not required, so a client that sends credentials or mail in clear is caught doing it:
:attr:`SmtpServer.logins`, :attr:`SmtpServer.received`).

What it received: :attr:`SmtpServer.received`, each a :class:`Received` (envelope, parsed message, whether it came
over TLS and who had logged in); :meth:`SmtpServer.wait_for` waits for one that matches.

Making it fail: :meth:`SmtpServer.fail` answers a command (``EHLO``, ``AUTH``, ``MAIL``, ``RCPT``, ``DATA``) with a
reply of the test's choosing (``451 4.3.0 Try again later``, ``550 5.1.1 No such user``, ``421 …``) until
:meth:`SmtpServer.heal`; :meth:`SmtpServer.stop` closes the port (connections are refused).

Use::

    with running_smtp_server(tmp_path) as server:
        mailer = SmtpMailer.from_url(server.url, sender='jit@example.com', ca_file=server.ca_file)
        mailer.send(message)
        got = server.wait_for(lambda r: 'sec@example.com' in r.rcpt_tos)

or the ``smtp_server`` fixture (tests/mail/conftest.py).
"""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Mode = Literal['starttls', 'smtps', 'plain']
#: The credentials the server takes by default: the password has characters a URL must percent-encode.
USERNAME = 'jit-mailer'
PASSWORD = 'Sm7p:p@ss/w%rd+?#'


@dataclass(frozen=True)
class Received:
    """One message the server accepted: the envelope, the message parsed back, how it came."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    raw: bytes
    #: Whether the message came over TLS (STARTTLS or implicit).
    tls: bool
    #: The user name the client logged in with, or None.
    login: str | None


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_ca_file(path: Path, common_name: str = 'jit test CA') -> Path:
    """A CA certificate (PEM) at ``path`` that signed nothing a server shows: trusting it alone, a client must
    refuse every server."""
    _, cert = _ca(common_name)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


#: The names the server's certificate carries unless told otherwise: every way a test reaches it.
SERVER_NAMES = ('localhost', '127.0.0.1', '::1')


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def make_server_certificate(directory: Path, names: Sequence[str] = SERVER_NAMES) -> tuple[Path, Path, Path]:
    """A CA and a server certificate it signed for ``names`` (host names and IP addresses): the paths of the CA
    certificate, the server certificate and the server key (PEM) in ``directory``."""
    ca_key, ca_cert = _ca('jit test SMTP CA')
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_file, cert_file, key_file = directory / 'ca.pem', directory / 'server.pem', directory / 'server-key.pem'
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(_pem(key))
    key_file.chmod(0o600)
    return ca_file, cert_file, key_file


class _Controller(Controller):
    """aiosmtpd's threaded controller on a port the system picks (port 0): the port is read from the bound
    socket before the controller's own first connection, so there is no window in which another process could
    take a port chosen beforehand."""

    def __init__(self, *args: Any, implicit_tls: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.implicit_tls = implicit_tls

    def factory(self) -> SMTP:
        server = super().factory()
        if self.implicit_tls:
            # The connection is TLS from the first byte, which aiosmtpd's SMTP does not see: it must be told not
            # to wait for STARTTLS before offering AUTH (auth_require_tls=False), and AUTH is still required.
            # Passing auth_required=True with that would warn (a UserWarning, an error under pytest) about AUTH
            # in clear, which it is not.
            server._auth_required = True
        return server

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpServer:
    """See the module docstring. Start it with :func:`running_smtp_server` (which stops it)."""

    def __init__(self, directory: Path, *, mode: Mode = 'starttls', username: str = USERNAME,
                 password: str = PASSWORD, names: Sequence[str] = SERVER_NAMES) -> None:  # fmt: skip
        self.mode, self.username, self.password = mode, username, password
        self.host = '127.0.0.1'
        self.port = 0
        self.ca_file, cert_file, key_file = make_server_certificate(directory, names)
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._tls.load_cert_chain(cert_file, key_file)
        self.received: list[Received] = []
        #: Every AUTH the server was sent: (mechanism, user name, whether the connection was encrypted). (Not
        #: ``auth_…``: aiosmtpd takes a handler's ``auth_*`` attributes for AUTH mechanisms.)
        self.logins: list[tuple[str, str, bool]] = []
        self._failures: dict[str, str] = {}
        self._changed = threading.Condition()
        self._controller: _Controller | None = None

    @property
    def url(self) -> str:
        """The ``JIT_SMTP_URL`` that reaches this server with its credentials (percent-encoded)."""
        scheme = {'starttls': 'smtp', 'smtps': 'smtps', 'plain': 'smtp'}[self.mode]
        credentials = f'{quote(self.username, safe="")}:{quote(self.password, safe="")}@'
        return f'{scheme}://{credentials}{self.host}:{self.port}'

    def start(self) -> None:
        """Listen (again, on a new port after :meth:`stop`)."""
        assert self._controller is None, 'already started'
        # aiosmtpd warns on every login that Session.login_data (which it sets itself) is deprecated.
        logging.getLogger('mail.log').setLevel(logging.ERROR)
        controller = _Controller(
            self, hostname=self.host, port=0, server_hostname='localhost', ready_timeout=10,
            ssl_context=self._tls if self.mode == 'smtps' else None,
            tls_context=self._tls if self.mode == 'starttls' else None,
            require_starttls=self.mode == 'starttls',
            authenticator=self._authenticate, auth_required=self.mode == 'starttls',
            auth_require_tls=self.mode == 'starttls', implicit_tls=self.mode == 'smtps',
        )  # fmt: skip
        controller.start()
        self._controller, self.port = controller, controller.port

    def stop(self) -> None:
        """Close the port: a client's connection is refused from now on."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def fail(self, command: str, reply: str) -> None:
        """Answer ``command`` (``EHLO``, ``AUTH``, ``MAIL``, ``RCPT``, ``DATA``) with ``reply`` from now on."""
        assert command in ('EHLO', 'AUTH', 'MAIL', 'RCPT', 'DATA'), command
        self._failures[command] = reply

    def heal(self) -> None:
        """Answer every command as a working server does again."""
        self._failures.clear()

    def wait_for(self, predicate: Callable[[Received], bool], timeout: float = 10.0) -> Received:
        """The first message received that ``predicate`` takes, waiting up to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for got in self.received:
                    if predicate(got):
                        return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f'no matching message in {timeout:g} s; received: {self.received!r}')
                self._changed.wait(left)

    # aiosmtpd's hooks, called in the server's thread.

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = data.login.decode('utf-8', 'replace')
        self.logins.append((mechanism, user, session.ssl is not None or self.mode == 'smtps'))
        ok = user == self.username and data.password.decode('utf-8', 'replace') == self.password
        # handled=False: aiosmtpd answers a failure with 535 (handled=True would mean "already answered")
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if 'EHLO' not in self._failures:
            return responses
        reply = self._failures['EHLO']
        if reply.startswith('421'):  # "closing the transmission channel" (RFC 5321 3.8): it does so
            await server.push(reply)
            server.transport.close()
            return []
        return [reply]

    async def handle_AUTH(self, server: Any, session: Any, envelope: Any, args: list[str]) -> Any:
        return self._failures.get('AUTH', MISSING)

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if 'MAIL' in self._failures:
            return self._failures['MAIL']
        envelope.mail_from, envelope.mail_options = address, options
        return '250 OK'

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if 'RCPT' in self._failures:
            return self._failures['RCPT']
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return '250 OK'

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if 'DATA' in self._failures:
            return self._failures['DATA']
        raw = bytes(envelope.original_content)
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        got = Received(mail_from=envelope.mail_from, rcpt_tos=tuple(envelope.rcpt_tos), message=parsed, raw=raw,
                       tls=session.ssl is not None or self.mode == 'smtps', login=session.auth_data)  # fmt: skip
        with self._changed:
            self.received.append(got)
            self._changed.notify_all()
        return '250 OK: queued'


@contextmanager
def running_smtp_server(directory: Path, *, mode: Mode = 'starttls', **options: Any) -> Iterator[SmtpServer]:
    """An :class:`SmtpServer` listening on 127.0.0.1 for the ``with`` block, its certificates in ``directory``."""
    server = SmtpServer(directory, mode=mode, **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
