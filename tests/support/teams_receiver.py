"""A local stand-in for a Teams channel's webhook: an HTTP server on a loopback port that records each POST.

Usage::

    with TeamsReceiver() as teams:                # http://127.0.0.1:PORT/workflows/…?…&sig=… (answers 202)
        TeamsWebhook().post(teams.url, payload)
        card = teams.wait_for(lambda p: 'Approve' in card_text(p), timeout=10)
        teams.answer_next(Answer.throttled(3), Answer(500))   # the next two POSTs; then the default again
        teams.answer_always(Answer.hanging())                 # every POST from now on: no answer until close
        teams.received                                        # every POST: path, headers, payload, status

``TeamsReceiver(tls=True)`` serves HTTPS with a certificate for 127.0.0.1 and localhost from a CA of its own,
whose PEM is ``ca_file`` (for ``TeamsWebhook(ca_file=...)``), and a client that does not trust it is refused.

The URL looks like a Workflows URL, its secret parts (``path_secret``, ``sig``) random, so a test can check
that no message or log line quotes them.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import pathlib
import secrets
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Answer:
    """How the receiver answers a POST: a status, a body, headers, and how long it waits first."""

    status: int = 202
    body: bytes = b''
    headers: tuple[tuple[str, str], ...] = ()
    #: Seconds to wait before answering (the client's timeout runs out first); closing the receiver ends it.
    hang: float = 0.0

    @classmethod
    def throttled(cls, retry_after: float | str | None = None) -> Answer:
        """429 Too Many Requests, with ``Retry-After`` when given."""
        return cls(429, headers=(('Retry-After', str(retry_after)),) if retry_after is not None else ())

    @classmethod
    def redirect(cls, location: str, status: int = 307) -> Answer:
        return cls(status, headers=(('Location', location),))

    @classmethod
    def hanging(cls, seconds: float = 3600.0) -> Answer:
        return cls(202, hang=seconds)


#: What Workflows answers; an old incoming webhook's is ``Answer(200, b'1')``.
ACCEPTED = Answer(202)


@dataclass(frozen=True)
class Received:
    """One POST: its path (with the query), headers, body, the JSON in it (None if not JSON), the status given,
    and the client's port (the same for POSTs on one kept-open connection)."""

    path: str
    headers: dict[str, str]
    body: bytes
    payload: Any
    status: int
    client_port: int
    at: float = field(default_factory=time.time)

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300


def card_of(payload: Any) -> dict[str, Any]:
    """The Adaptive Card in a webhook payload (its first attachment's ``content``)."""
    return dict(payload['attachments'][0]['content'])


def card_text(payload: Any) -> str:
    """Every text a card shows, joined: its text runs, text blocks, facts and action titles."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get('type') in ('TextRun', 'TextBlock') and isinstance(node.get('text'), str):
                out.append(node['text'])
            if isinstance(node.get('title'), str):
                out.append(node['title'])
            if isinstance(node.get('value'), str):
                out.append(node['value'])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card_of(payload))
    return ''.join(out)


class TeamsReceiver:
    """A Teams webhook on 127.0.0.1: records every POST, answers as told (202 unless told otherwise)."""

    def __init__(self, *, tls: bool = False, default: Answer = ACCEPTED) -> None:
        self.default = default
        self._planned: list[Answer] = []
        self._received: list[Received] = []
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._dir = pathlib.Path(tempfile.mkdtemp(prefix='teams-receiver-'))
        self.ca_file: str | None = None
        self.path_secret, self.sig = secrets.token_hex(16), secrets.token_urlsafe(24)
        self.server = ThreadingHTTPServer(('127.0.0.1', 0), self._handler())
        self.server.daemon_threads = True
        scheme = 'http'
        if tls:
            self.ca_file = self._certificates()
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self._dir / 'cert.pem', self._dir / 'key.pem')
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = 'https'
        self.port = self.server.server_port
        self.path = (f'/workflows/{self.path_secret}/triggers/manual/paths/invoke'
                     f'?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={self.sig}')  # fmt: skip
        self.url = f'{scheme}://127.0.0.1:{self.port}{self.path}'
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def __enter__(self) -> TeamsReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def answer_next(self, *answers: Answer) -> None:
        """The next POSTs get these answers, in order; then the default again."""
        with self._cond:
            self._planned.extend(answers)

    def answer_always(self, answer: Answer) -> None:
        """Every POST from now on gets ``answer`` (after any planned with :meth:`answer_next`)."""
        with self._cond:
            self.default = answer

    @property
    def received(self) -> list[Received]:
        with self._cond:
            return list(self._received)

    @property
    def payloads(self) -> list[Any]:
        """The JSON of every POST answered with a 2xx (delivered), in order."""
        return [r.payload for r in self.received if r.delivered]

    def wait_for(
        self, predicate: Callable[[Any], bool] = lambda _: True, timeout: float = 10.0, *, delivered: bool = True
    ) -> Any:
        """The first payload (of a delivered POST, unless ``delivered=False``) that ``predicate`` holds for,
        waiting up to ``timeout`` seconds for it to come.

        Raises:
            AssertionError: none came in time (the message lists what did).
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for got in self._received:
                    if (got.delivered or not delivered) and predicate(got.payload):
                        return got.payload
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(r.status, card_text(r.payload)[:80] if _is_card(r.payload) else r.body[:80])
                            for r in self._received]  # fmt: skip
                    raise AssertionError(f'no matching POST in {timeout}s; received (status, text): {seen}')
                self._cond.wait(left)

    def close(self) -> None:
        self._closing.set()  # hanging answers end now
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)
        shutil.rmtree(self._dir, ignore_errors=True)

    def _next_answer(self) -> Answer:
        with self._cond:
            return self._planned.pop(0) if self._planned else self.default

    def _record(self, got: Received) -> None:
        with self._cond:
            self._received.append(got)
            self._cond.notify_all()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = None
                answer = receiver._next_answer()
                receiver._record(Received(self.path, dict(self.headers.items()), body, payload, answer.status,
                                          self.client_address[1]))  # fmt: skip
                if answer.hang and receiver._closing.wait(answer.hang):
                    self.close_connection = True
                    return
                self.send_response(answer.status)
                for key, value in (('Content-Length', str(len(answer.body))), *answer.headers):
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def _certificates(self) -> str:
        """A CA of its own and, signed by it, a certificate for 127.0.0.1 and localhost: the CA's PEM's path."""
        ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'teams-receiver test CA')])
        now = datetime.datetime.now(datetime.UTC)

        def built(subject: x509.Name, public_key: Any, *extensions: tuple[Any, bool]) -> x509.Certificate:
            builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(public_key)
                       .serial_number(x509.random_serial_number())
                       .not_valid_before(now - datetime.timedelta(minutes=5))
                       .not_valid_after(now + datetime.timedelta(days=1))
                       .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
                       .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                      critical=False))  # fmt: skip
            for extension, critical in extensions:
                builder = builder.add_extension(extension, critical=critical)
            return builder.sign(ca_key, hashes.SHA256())

        usage = dict.fromkeys(['content_commitment', 'key_encipherment', 'data_encipherment', 'key_agreement',
                               'encipher_only', 'decipher_only'], False)  # fmt: skip
        ca = built(
            ca_name,
            ca_key.public_key(),
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True, **usage), True),
        )
        here = [x509.DNSName('localhost'), x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]
        leaf = built(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'localhost')]),
            key.public_key(),
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **usage), True),
            (x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False),
            (x509.SubjectAlternativeName(here), False),
        )
        pem = serialization.Encoding.PEM
        (self._dir / 'key.pem').write_bytes(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        (self._dir / 'cert.pem').write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        ca_path = self._dir / 'ca.pem'
        ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        return str(ca_path)


def _is_card(payload: Any) -> bool:
    try:
        card_of(payload)
    except (KeyError, IndexError, TypeError):
        return False
    return True
