"""``jit ci``: the pipelines' client of the HTTP API (:mod:`bot.api.server`), on the standard library alone.

=====================================================  ===================================================
``jit ci request RESOURCE [ROLE] [DURATION] --wait``   file, wait for the grant, print the access details
``jit ci request RESOURCE ...`` (no ``--wait``)        file, print the request's ID and status
``jit ci release ID``                                  give the access back now (or cancel while pending)
``jit ci token NAME``                                  a new token, and the hash line for ``JIT_API_TOKENS``
=====================================================  ===================================================

Settings come from the environment: ``JIT_URL`` (where ``jit serve`` answers; ``--url`` overrides it) and
``JIT_TOKEN``. The token is never a flag, so it lands in neither shell history nor ``ps``, and it is
never printed. Progress goes to stderr; stdout carries only the result, so ``--format env >> $GITHUB_ENV``
and ``--format json | jq`` work.

Each request gets a fresh X25519 key pair (:class:`bot.sealed_box.Recipient`); only the public
half is sent, the worker seals the details to it with standard HPKE (RFC 9180, so a pipeline without jit
opens them with any HPKE library), and the server hands the box over once, on the first read that sees
``active``, so they are opened from that same answer. A pipeline that gives up (``--timeout``, SIGINT,
SIGTERM) releases its request first, so nothing is granted to a job that is gone.

Exit codes::

    0    done (granted and printed; filed; released; token made)
    1    refused or ended: the policy refuses (403), over a limit (429), denied, expired, cancelled,
         failed, revoked, or the access came but cannot be handed over (it is then released)
    2    a usage, setting or connection problem, or the server says the call is wrong (400, 401, 404)
    3    --wait timed out (the request was released)
    130  SIGINT while waiting, 143 SIGTERM (the request was released)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

from bot.api.tokens import NAME, hash_token, new_token
from bot.core.durations import DurationError, format_duration, looks_like_duration, parse_duration
from bot.core.model import FINAL_STATUSES, RequestStatus
from bot.sealed_box import Recipient, SealedBoxError

S = RequestStatus
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 3
#: ``--wait`` asks this often at first, then half as often again each time up to POLL_MAX: a grant
#: usually comes within seconds, an approver in Slack may take minutes.
POLL_FIRST, POLL_MAX = 1.0, 5.0
#: One HTTP call's own limit; the server answers in milliseconds, so longer means something is wrong.
CALL_TIMEOUT = 10.0
#: How long a release waits out a grant in progress (409 with Retry-After) or a store that does not
#: answer (503): long enough for a grant to finish, short enough for a CI runner's cancel grace period.
RELEASE_PATIENCE = 30.0
#: The same after SIGINT or SIGTERM: runners follow those with SIGKILL within seconds.
INTERRUPTED_PATIENCE = 5.0
#: How long filing waits out 503 (the server says nothing was filed, so asking again is safe).
FILE_PATIENCE = 30.0
DEFAULT_TIMEOUT = '15m'
#: What the server accepts after ``Bearer`` (``bot.api.server``); anything else is not a token.
_TOKEN = re.compile(r'[A-Za-z0-9._~+/-]{1,200}=*')
_REQUEST_ID = re.compile(r'r-[a-z0-9]{8}')
_LOOPBACK = {'localhost', '127.0.0.1', '::1'}
#: Statuses that mean "not now" from the server or a proxy in front of it; waiting may help.
_TRANSIENT = {502, 503, 504}


class CiError(Exception):
    """Ends the command: ``message`` (one line, never the token) on stderr, ``code`` as the exit code."""

    code = EXIT_USAGE

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class Unreachable(CiError):
    """No HTTP answer at all: refused, reset, timed out, DNS, TLS. ``--wait`` keeps trying; a single call stops."""


class Unusable(CiError):
    """The access was granted but cannot be handed to the pipeline (unreadable details, an impossible
    env line); the caller releases it, since nobody could use it."""

    code = EXIT_REFUSED


class TimedOut(CiError):
    """``--wait`` waited ``--timeout`` without a grant."""

    code = EXIT_TIMEOUT


# BaseException: a signal is control flow, and must get past any ``except Exception`` inside urllib.
class _Interrupted(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def add_arguments(parser: argparse.ArgumentParser) -> None:
    tools = parser.add_subparsers(dest='ci_command', required=True, metavar='TOOL')
    url_help = 'where jit serve answers, e.g. https://jit.example.com (default: JIT_URL)'
    req = tools.add_parser(
        'request', help='file a request; with --wait, wait for the grant and print the access details',
        description='File a request as the pipeline JIT_TOKEN names. ROLE and DURATION left out, the rule decides '
                    "them (a resource's only role, the rule's default_duration).")  # fmt: skip
    req.add_argument('resource')
    req.add_argument('role', nargs='?', help='the role (may be left out when the resource has one)')
    req.add_argument('duration', nargs='?', help="how long, e.g. 15m, 2h (default: the rule's default_duration)")
    req.add_argument('--reason', default='', help='why, as approvers and the audit trail see it')
    req.add_argument('--ticket', help='a ticket reference, for rules that require one')
    req.add_argument('--context', action='append', default=[], metavar='KEY=VALUE',
                     help='what the job is doing, matched by rules with trigger: {pipeline: EVENT, ...}; '
                          'repeat it (--context event=pr_merge --context branch=production)')  # fmt: skip
    req.add_argument('--wait', action='store_true', help='wait for the grant and print the access details')
    req.add_argument('--timeout', default=DEFAULT_TIMEOUT,
                     help=f'with --wait: give up and release after this long (default {DEFAULT_TIMEOUT})')  # fmt: skip
    req.add_argument('--format', choices=('text', 'env', 'json'), default='text',
                     help='text (default); env: JIT_NAME=value lines for $GITHUB_ENV; json: one object')  # fmt: skip
    req.add_argument('--url', help=url_help)
    rel = tools.add_parser('release', help='give the access back now, or cancel the request while it is pending')
    rel.add_argument('request_id', metavar='ID')
    rel.add_argument('--url', help=url_help)
    tok = tools.add_parser('token', help='make a token for pipeline NAME and the hash line for JIT_API_TOKENS')
    tok.add_argument('name', metavar='NAME')


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    """``jit ci TOOL``: the exit code; every problem is one line on stderr."""
    try:
        if args.ci_command == 'token':
            return make_token(args.name)
        client = Client(load_target(args.url, environ))
        if args.ci_command == 'release':
            return release_command(client, args.request_id)
        return request_command(client, args)
    except CiError as exc:
        say(exc.message)
        return exc.code
    except KeyboardInterrupt:  # Ctrl-C before a request exists: nothing to give back
        return 128 + signal.SIGINT
    except _Interrupted as stop:  # a signal in the instant before the release began
        return 128 + stop.signum


def say(text: str) -> None:
    """A progress or problem line on stderr (stdout is the result's)."""
    print(f'jit: {text}', file=sys.stderr, flush=True)


# --- settings ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """Where to send calls and with what token (``repr`` leaves the token out)."""

    base: str  # the server's root URL, without a trailing slash
    token: str = field(repr=False)
    label: str = 'JIT_URL'  # where ``base`` came from, for messages


def load_target(url: str | None, environ: Mapping[str, str]) -> Target:
    """``--url`` or ``JIT_URL``, and ``JIT_TOKEN``, checked; every problem in one line."""
    label = '--url' if url else 'JIT_URL'
    url = (url or environ.get('JIT_URL') or '').strip()
    token = (environ.get('JIT_TOKEN') or '').strip()  # a secret store's trailing newline is not part of it
    problems = []
    if not url:
        problems.append('JIT_URL is not set: set it to where jit serve answers (e.g. https://jit.example.com)')
    else:
        problem = _url_problem(url)
        if problem:
            problems.append(f'{label} {problem}')
    if not token:
        problems.append('JIT_TOKEN is not set: give the pipeline its token (from `jit ci token NAME`) as a secret')
    elif token.startswith('sha256:') or ':sha256:' in token:
        problems.append('JIT_TOKEN holds the hash line for JIT_API_TOKENS, not the token `jit ci token` printed')
    elif not _TOKEN.fullmatch(token):
        problems.append('JIT_TOKEN is not a token (expected jit_ and 43 letters, digits, - or _)')
    if problems:
        raise CiError('; '.join(problems))
    return Target(url.rstrip('/'), token, label)


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return f'{url!r} is not a URL'
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        return f'{url!r} is not an http(s):// URL of the jit server'
    if parts.username is not None or parts.password is not None:
        return 'must not carry a user or password (the token is JIT_TOKEN)'
    if parts.query or parts.fragment:
        return f"{url!r} should be the server's address only, without ?query or #fragment"
    return None


# --- HTTP -------------------------------------------------------------------------------------------


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
             timeout: float = CALL_TIMEOUT) -> Answer:  # fmt: skip
        """One call to ``/api/v1`` + ``path``.

        Raises:
            Unreachable: no HTTP answer.
            CiError: an answer that is not the jit API's (a redirect, not JSON).
        """
        data = None if body is None else json.dumps(body).encode()
        headers = {'Authorization': f'Bearer {self.target.token}', 'Accept': 'application/json',
                   'User-Agent': 'jit-ci'}  # fmt: skip
        if data is not None:
            headers['Content-Type'] = 'application/json'
        req = urllib.request.Request(f'{self.target.base}/api/v1{path}', data=data, method=method, headers=headers)
        try:
            status, raw, got = self.transport(req, timeout)
        except (OSError, http.client.HTTPException) as exc:
            raise Unreachable(f'cannot reach {self.target.label} {self.target.base}: {_why(exc)}') from None
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


# --- jit ci request ---------------------------------------------------------------------------------


class _Signals:
    """SIGINT and SIGTERM as :class:`_Interrupted`, raised once; while :meth:`held`, only noted for :meth:`check`.

    Held while filing: a request filed as the job is cancelled must still be released, and that needs
    its ID, so the POST is let finish and the signal is acted on right after. Raised once: a second
    signal (runners send SIGINT, then SIGTERM) must not cut the release short.
    """

    def __init__(self) -> None:
        self.caught: int | None = None
        self._held = self._fired = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.caught = self.caught or signum
        if not self._held:
            self.check()

    @contextmanager
    def held(self) -> Iterator[None]:
        self._held = True
        try:
            yield
        finally:
            self._held = False

    def check(self) -> None:
        """Raise for a signal noted while held (unless one was raised already)."""
        if self.caught is not None and not self._fired:
            self._fired = True
            raise _Interrupted(self.caught)

    def silence(self) -> None:
        """From now on signals are only noted: the command is ending on its own."""
        self._fired = True


def request_command(client: Client, args: argparse.Namespace) -> int:
    try:
        timeout = parse_duration(args.timeout)
    except DurationError as exc:
        raise CiError(f'--timeout: {exc}') from None
    role, duration = args.role, args.duration
    if duration is None and role is not None and looks_like_duration(role):
        role, duration = None, role  # `jit ci request demo-app 15m`: the resource's only role, for 15m
    recipient = Recipient()
    body: dict[str, Any] = {'resource': args.resource, 'public_key': recipient.public_key}
    optional = {'role': role, 'duration': duration, 'reason': args.reason, 'ticket': args.ticket,
                'context': parse_context(args.context)}  # fmt: skip
    body.update({key: value for key, value in optional.items() if value})
    request_id = None
    with _Signals() as signals:
        try:
            with signals.held():
                filed = file_request(client, body, check=signals.check)
                request_id = str(filed['id'])
            say(f'filed {request_id}: {filed.get("status")} ({filed.get("decision") or filed.get("rule")})')
            signals.check()
            if not args.wait:
                print(format_filed(filed, args.format), flush=True)
                return EXIT_OK
            view, details = wait_for_grant(client, recipient, request_id, timeout=timeout, seen=filed.get('status'))
            result = format_result(view, details, args.format)
            with signals.held():
                print(result, flush=True)
            signals.check()
            return EXIT_OK
        except (_Interrupted, TimedOut, Unusable) as stop:
            signals.silence()
            if isinstance(stop, _Interrupted):
                code, why = 128 + stop.signum, signal.Signals(stop.signum).name
                patience = INTERRUPTED_PATIENCE
            else:
                code, why, patience = stop.code, stop.message, RELEASE_PATIENCE
            if request_id is None:
                say(f'{why}: nothing was filed')
            else:
                say(f'{why}; {give_back(client, request_id, patience=patience)}')
            return code


def parse_context(pairs: list[str]) -> dict[str, str]:
    """``--context KEY=VALUE`` options as the API's ``context`` object."""
    out = {}
    for pair in pairs:
        key, eq, value = pair.partition('=')
        if not eq or not key.strip():
            raise CiError(f'--context {pair!r}: expected KEY=VALUE (e.g. event=pr_merge)')
        out[key.strip()] = value
    return out


def file_request(client: Client, body: dict[str, Any], *, check: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:  # fmt: skip
    """POST the request: its view on 201.

    A 503 (nothing filed) is asked again for up to FILE_PATIENCE; ``check`` runs around each pause, where
    nothing is filed and a signal noted meanwhile may end the command.
    """
    give_up = clock() + FILE_PATIENCE
    while True:
        answer = client.call('POST', '/requests', body)
        if answer.status == 201 and isinstance(answer.body.get('id'), str):
            return answer.body
        if answer.status == 503 and clock() < give_up:
            say(f'{answer.error}; trying again')
            check()
            sleep(min(answer.retry_after(2.0), POLL_MAX))
            check()
            continue
        raise _refusal(answer)


def wait_for_grant(client: Client, recipient: Recipient, request_id: str, *, timeout: float,
                   seen: str | None = None, clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """Poll until the request is active: its view and the opened details.

    The first read that sees ``active`` carries the sealed details, and no later read does, so they are
    opened from that answer. Connection failures and 502/503/504 are waited out until ``timeout``. Each
    new status is said on stderr (``seen``: the one already said).

    Raises:
        CiError: ended without a grant (exit 1), or the server refuses the call (exit 2).
        Unusable: active, but the details cannot be opened.
        TimedOut: still not active after ``timeout`` seconds.
    """
    deadline, delay = clock() + timeout, POLL_FIRST
    path = f'/requests/{quote(request_id)}'
    trouble = None
    while True:
        pause = delay
        problem: str | None = None
        try:
            answer = client.call('GET', path, timeout=min(CALL_TIMEOUT, max(1.0, deadline - clock())))
        except Unreachable as exc:
            problem = exc.message
        else:
            if answer.status in _TRANSIENT:
                problem, pause = f'{answer.error} (HTTP {answer.status})', max(delay, answer.retry_after(delay))
            elif answer.status != 200:
                raise _refusal(answer)
            else:
                view = answer.body
                state = str(view.get('status'))
                if state != seen:
                    say(f'{request_id}: {state}')
                    seen = state
                if state == S.ACTIVE:
                    return view, _open(recipient, view, request_id)
                if state in FINAL_STATUSES or state == S.REVOKE_FAILED:
                    why = view.get('deny_reason') or view.get('error')
                    by = f' by {view["decided_by"]}' if state == S.DENIED and view.get('decided_by') else ''
                    raise CiError(f'{request_id} {state}{by}' + (f': {why}' if why else ''), EXIT_REFUSED)
        if problem and problem != trouble:
            say(f'{problem}; trying again until the timeout')
        trouble = problem
        left = deadline - clock()
        if left <= 0:
            raise TimedOut(f'{request_id} was not granted within {format_duration(int(timeout))}')
        sleep(min(pause, POLL_MAX, left))
        delay = min(POLL_MAX, delay * 1.5)


def _open(recipient: Recipient, view: dict[str, Any], request_id: str) -> dict[str, Any]:
    box = view.get('details')
    if box is None:
        say(f'{request_id}: no access details came with the grant (the provider returned none)')
        return {}
    try:
        return recipient.open(box, request_id=request_id)
    except (SealedBoxError, ValueError) as exc:
        raise Unusable(f'the access details of {request_id} cannot be opened: {exc}') from None


def give_back(client: Client, request_id: str, *, patience: float) -> str:
    """Release after giving up, and say how it went (never raises: the command is ending anyway)."""
    try:
        return 'released: ' + describe_release(release(client, request_id, patience=patience))
    except CiError as exc:
        return f'could not release {request_id}: {exc.message}'


# --- output -----------------------------------------------------------------------------------------


def format_filed(view: dict[str, Any], fmt: str) -> str:
    """What ``request`` without ``--wait`` prints: the ID and where it stands."""
    if fmt == 'json':
        return json.dumps(view)
    if fmt == 'env':
        return f'JIT_REQUEST_ID={view["id"]}\nJIT_STATUS={view.get("status")}'
    return f'request {view["id"]} {view.get("status")}'


def format_result(view: dict[str, Any], details: dict[str, Any], fmt: str) -> str:
    """What ``request --wait`` prints once granted, in ``--format``.

    Raises:
        Unusable: ``env`` and a detail that cannot be one ``NAME=value`` line (a newline would let the
            rest of the value set other variables in ``$GITHUB_ENV``), or two details with one name.
    """
    if fmt == 'json':
        return json.dumps({**view, 'details': details})
    if fmt == 'env':
        lines = {'JIT_REQUEST_ID': str(view['id']), 'JIT_EXPIRES_AT': str(view.get('expires_at') or '')}
        for key, value in details.items():
            name = 'JIT_' + re.sub(r'[^A-Za-z0-9]', '_', str(key)).upper()
            text = _plain(value)
            if any(c in text for c in '\r\n\x00'):
                raise Unusable(f'detail {key!r} spans lines, so it cannot be one env line (use --format json)')
            if name in lines:
                raise Unusable(f'detail {key!r} would be {name}, which is already set (use --format json)')
            lines[name] = text
        return '\n'.join(f'{name}={text}' for name, text in lines.items())
    head = f'request {view["id"]} {view.get("status")} until {view.get("expires_at")}'
    return '\n'.join([head, *(f'{key}: {_plain(value)}' for key, value in details.items())])


def _plain(value: Any) -> str:
    if isinstance(value, str):
        return value
    return '' if value is None else json.dumps(value)


# --- jit ci release ---------------------------------------------------------------------------------


def release(client: Client, request_id: str, *, patience: float = RELEASE_PATIENCE,
            clock: Callable[[], float] = time.monotonic,
            sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:  # fmt: skip
    """POST .../release: the answer on 200/202; 409 (being granted) and 503 are asked again for ``patience`` s."""
    if not _REQUEST_ID.fullmatch(request_id):
        raise CiError(f'{request_id[:40]!r} is not a request ID (r- and 8 letters or digits)')
    give_up = clock() + patience
    while True:
        answer = client.call('POST', f'/requests/{quote(request_id)}/release')
        if answer.status in (200, 202):
            return answer.body
        if answer.status in (409, *_TRANSIENT) and clock() < give_up:
            say(f'{answer.error}; trying again')
            sleep(min(answer.retry_after(2.0), POLL_MAX, max(0.1, give_up - clock())))
            continue
        raise _refusal(answer)


def describe_release(answer: dict[str, Any]) -> str:
    """What a release did, in words: the access ends now, it was cancelled, or it was already over."""
    request_id, state = answer.get('id'), answer.get('status')
    if answer.get('ending'):
        return f'{request_id} {state}: the access ends now'
    if state == S.CANCELLED:
        return f'{request_id} cancelled: it will not be granted'
    return f'{request_id} already {state}: nothing to give back'


def release_command(client: Client, request_id: str) -> int:
    print(describe_release(release(client, request_id)), flush=True)
    return EXIT_OK


# --- jit ci token -----------------------------------------------------------------------------------


def make_token(name: str) -> int:
    """Print a new token and its ``NAME:sha256:HEX`` line (stdout); what to do with each goes to stderr."""
    if not NAME.match(name):
        raise CiError(f'{name[:70]!r} is not a pipeline name: 1-64 of A-Z a-z 0-9 . _ - starting with a letter '
                      'or digit')  # fmt: skip
    token = new_token()
    say(f"token for pipeline:{name}, shown only now: put it in the pipeline's secret store as JIT_TOKEN")
    print(token, flush=True)
    say('add this entry to JIT_API_TOKENS on the jit server (the hash only: it cannot be turned back into the token)')
    print(f'{name}:{hash_token(token)}', flush=True)
    return EXIT_OK
