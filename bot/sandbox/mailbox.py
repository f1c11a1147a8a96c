"""The sandbox's own mail server: SMTP on a loopback port, every message kept in memory for the Inbox pane.

Part of `bot/sandbox/`; aiosmtpd only. `jit sandbox` points jit at it with `JIT_SMTP_URL=smtp+insecure://...`:
plain SMTP, no TLS and no login, which is what a relay on the same machine takes (nothing leaves 127.0.0.1).
It accepts mail for any address and delivers nothing anywhere: the page shows each user the messages sent to
their email. Like the page's history, the messages live as long as the process (at most `MAX_MESSAGES`, the
oldest dropped first).

Synchronous use::

    mailbox = Mailbox()
    url = mailbox.start()                       # "smtp+insecure://127.0.0.1:PORT"
    ...                                         # jit sends an approval email
    [mail] = mailbox.to("sec@example.com")
    mail.subject, mail.text, mail.html
    mailbox.stop()
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, cast

from aiosmtpd.controller import Controller

__all__ = ["Mail", "Mailbox"]

#: How many messages the mailbox keeps; older ones are dropped.
MAX_MESSAGES = 1000
#: The largest message the server takes (an approval email is a few kilobytes).
MAX_SIZE = 1024 * 1024


@dataclass(frozen=True)
class Mail:
    """One message as the server received it: the envelope, the headers the Inbox lists, and its two parts."""

    id: int
    time: float
    mail_from: str
    rcpt_tos: tuple[str, ...]
    sender: str
    to: str
    subject: str
    date: str
    #: The text/plain part, if any.
    text: str | None
    #: The text/html part, if any.
    html: str | None
    raw: bytes

    def summary(self) -> dict[str, Any]:
        """What the Inbox list shows of it."""
        return {"id": self.id, "time": self.time, "from": self.sender, "to": self.to, "subject": self.subject}

    def full(self) -> dict[str, Any]:
        """What the reading pane shows of it."""
        return {**self.summary(), "date": self.date, "text": self.text, "html": self.html}


def _header(msg: EmailMessage, name: str) -> str:
    """A header as text (decoded), empty when absent or unreadable."""
    try:
        value = msg.get(name)
    except (ValueError, IndexError, TypeError):  # a header the parser cannot make sense of
        return ""
    return "" if value is None else str(value)


def _part(msg: EmailMessage, subtype: str) -> str | None:
    """The decoded text of the message's preferred text/`subtype` part, or None."""
    try:
        body = msg.get_body(preferencelist=(subtype,))
        return None if body is None else str(body.get_content())
    except (LookupError, ValueError, TypeError):  # an unknown charset, a broken transfer encoding
        return None


def parse_mail(number: int, mail_from: str, rcpt_tos: tuple[str, ...], raw: bytes) -> Mail:
    """A received message, parsed as a mail client would."""
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)  # the default policy makes EmailMessage objects
    return Mail(
        id=number, time=time.time(), mail_from=mail_from, rcpt_tos=rcpt_tos,
        sender=_header(parsed, "From"), to=_header(parsed, "To"), subject=_header(parsed, "Subject"),
        date=_header(parsed, "Date"), text=_part(parsed, "plain"), html=_part(parsed, "html"), raw=raw,
    )  # fmt: skip


class _Controller(Controller):
    """aiosmtpd's threaded controller on a port the system picks: read from the bound socket before the
    controller's own first connection, so no other process can take it in between."""

    def _trigger_server(self) -> None:
        server = cast(asyncio.Server, self.server)
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class _Handler:
    """aiosmtpd's handler: hands each message to the mailbox (aiosmtpd looks its hooks up by name)."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Keep the message; answer as a relay that took it."""
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        self.mailbox.keep(str(envelope.mail_from or ""), tuple(str(r) for r in envelope.rcpt_tos), raw)
        return "250 2.0.0 OK: kept for the sandbox's Inbox"


class Mailbox:
    """An SMTP server that keeps what it receives. See the module docstring."""

    def __init__(self, *, limit: int = MAX_MESSAGES) -> None:
        """Nothing listens until `start`."""
        self.limit = limit
        self._lock = threading.Lock()
        self._mails: list[Mail] = []
        self._count = 0
        self._controller: _Controller | None = None

    # -- serving -------------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1") -> str:
        """Listen on a free port of `host` (on a thread of aiosmtpd's) and return the `JIT_SMTP_URL` for it."""
        if self._controller is not None:
            raise RuntimeError("mailbox already started")
        controller = _Controller(_Handler(self), hostname=host, port=0, data_size_limit=MAX_SIZE, ident="jit sandbox")
        controller.start()
        self._controller = controller
        return self.url

    def stop(self) -> None:
        """Stop listening; stopping a stopped mailbox does nothing."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    @property
    def url(self) -> str:
        """`smtp+insecure://127.0.0.1:PORT`: plain SMTP, as jit's settings spell a local relay."""
        if self._controller is None:
            raise RuntimeError("mailbox is not started")
        return f"smtp+insecure://{self._controller.hostname}:{self._controller.port}"

    def keep(self, mail_from: str, rcpt_tos: tuple[str, ...], raw: bytes) -> Mail:
        """Keep a message the server accepted."""
        with self._lock:
            self._count += 1
            number = self._count
        mail = parse_mail(number, mail_from, rcpt_tos, raw)
        with self._lock:
            self._mails.append(mail)
            del self._mails[: -self.limit]
        return mail

    # -- reading -------------------------------------------------------------------------------------

    @property
    def mails(self) -> list[Mail]:
        """Every message kept, oldest first (a copy)."""
        with self._lock:
            return list(self._mails)

    def to(self, address: str) -> list[Mail]:
        """The messages whose envelope names `address` (case as it may, as mail servers take it), oldest first."""
        wanted = address.strip().lower()
        return [m for m in self.mails if wanted and wanted in (r.strip().lower() for r in m.rcpt_tos)]

    def get(self, number: int) -> Mail | None:
        """One message by its number, if still kept."""
        return next((m for m in self.mails if m.id == number), None)
