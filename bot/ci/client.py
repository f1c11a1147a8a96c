"""The HTTP side of ``jit ci``: the API's calls over a transport, and what an answer means.

The transport is one function (urllib by default), so the tests hand the :class:`Client` scripted
answers, as httpx's ``MockTransport`` is used, instead of patching. The client turns what can go wrong
below the API (no answer, a redirect, a page that is not the API's JSON) into one-line errors that name
the setting to fix; :func:`_refusal` turns an API answer other than the one expected into an exit code.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bot.ci.errors import EXIT_REFUSED, EXIT_USAGE, AnswerLost, CiError, Unreachable
from bot.ci.output import say
from bot.ci.target import Target

#: One HTTP call's own limit; the server answers in milliseconds, so longer means something is wrong.
CALL_TIMEOUT = 10.0
_LOOPBACK = {'localhost', '127.0.0.1', '::1'}


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer: status, the JSON object, headers (lower-case names)."""

    status: int
    body: dict[str, Any]
    headers: Mapping[str, str]

    @property
    def error(self) -> str:
        """The server's ``error``, as one line."""
        return ' '.join(str(self.body.get('error') or f'HTTP {self.status}').split())

    def retry_after(self, default: float) -> float:
        try:
            return max(0.0, float(self.headers.get('retry-after') or default))
        except ValueError:
            return default


#: Sends a request with a timeout: (status, body bytes, headers with lower-case names), or raises OSError or
#: HTTPException.
Transport = Callable[[urllib.request.Request, float], tuple[int, bytes, Mapping[str, str]]]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would carry the token to wherever it points; it becomes an answer to report instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _urllib_transport(req: urllib.request.Request, timeout: float) -> tuple[int, bytes, Mapping[str, str]]:
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=timeout) as answer:
            return answer.status, answer.read(), {k.lower(): v for k, v in answer.headers.items()}
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read(), {k.lower(): v for k, v in err.headers.items()}


class Client:
    """The API's three calls over a transport (urllib by default; tests hand in a fake)."""

    def __init__(self, target: Target, *, transport: Transport = _urllib_transport) -> None:
        self.target, self.transport = target, transport
        host = urlsplit(target.base).hostname or ''
        if target.base.startswith('http://') and host not in _LOOPBACK:
            say(f'warning: {target.label} is plain http: the token and the details cross the network unencrypted')

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, *,
             timeout: float = CALL_TIMEOUT, headers: Mapping[str, str] | None = None) -> Answer:  # fmt: skip
        """One call to ``/api/v1`` + ``path``.

        Raises:
            Unreachable: no HTTP answer.
            CiError: an answer that is not the jit API's (a redirect, not JSON).
        """
        data = None if body is None else json.dumps(body).encode()
        sent = {**(headers or {}), 'Authorization': f'Bearer {self.target.token}', 'Accept': 'application/json',
                'User-Agent': 'jit-ci'}  # fmt: skip
        if data is not None:
            sent['Content-Type'] = 'application/json'
        req = urllib.request.Request(f'{self.target.base}/api/v1{path}', data=data, method=method, headers=sent)
        try:
            status, raw, got = self.transport(req, timeout)
        except (OSError, http.client.HTTPException) as exc:
            lost = AnswerLost if _maybe_arrived(exc) else Unreachable
            raise lost(f'cannot reach {self.target.label} {self.target.base}: {_why(exc)}') from None
        if 300 <= status < 400:
            raise CiError(f'{self.target.label} {self.target.base} redirects to {got.get("location")!r}; set '
                          f'{self.target.label} to where jit serve answers (the token is not sent on)')  # fmt: skip
        try:
            parsed = json.loads(raw.decode('utf-8')) if raw else {}
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            if 200 <= status < 300:
                raise CiError(f"{self.target.label} {self.target.base} answered HTTP {status} but not with the "
                              "jit API's JSON: is it the jit server?")  # fmt: skip
            parsed = {'error': f'HTTP {status} from {self.target.base}, not from the jit API'}
        return Answer(status, parsed, got)


def _maybe_arrived(exc: BaseException) -> bool:
    """Whether the call may have reached the server (its answer was lost), unlike a refused connection, a name
    that does not resolve or a TLS failure, where nothing was sent."""
    reason: Any = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return isinstance(reason, (TimeoutError, ConnectionResetError, BrokenPipeError, http.client.HTTPException))


def _why(exc: BaseException) -> str:
    """An OS-level failure in a few words (``[Errno 111] Connection refused`` is ``connection refused``)."""
    reason: Any = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, ConnectionRefusedError):
        return 'connection refused'
    if isinstance(reason, socket.gaierror):
        return 'the host name does not resolve'
    if isinstance(reason, TimeoutError):
        return 'no answer in time'
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f'its TLS certificate is not trusted ({reason.verify_message})'
    if isinstance(reason, ssl.SSLError):
        return f'TLS failed ({reason.reason or "handshake"})'
    if isinstance(reason, (ConnectionResetError, http.client.RemoteDisconnected)):
        return 'the connection was closed before an answer'
    if isinstance(reason, OSError) and reason.strerror:
        return str(reason.strerror).lower()
    return str(reason) or type(reason).__name__


def _refusal(answer: Answer) -> CiError:
    """The error for an answer other than the one expected: whose problem it is decides the exit code."""
    if answer.status == 403:
        allowed = [str(a) for a in answer.body.get('allowed') or []]
        return CiError(answer.error + (f' Allowed for this pipeline: {"; ".join(allowed)}' if allowed else ''),
                       EXIT_REFUSED)  # fmt: skip
    if answer.status == 429:
        wait = answer.headers.get('retry-after')
        return CiError(answer.error + (f' (try again in {wait} s)' if wait else ''), EXIT_REFUSED)
    if answer.status == 409:
        return CiError(answer.error, EXIT_REFUSED)
    return CiError(f'{answer.error} (HTTP {answer.status})', EXIT_USAGE)
