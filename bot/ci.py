"""``jit ci``: the pipelines' client of the HTTP API (``bot.api.server``), with nothing but the standard library.

``jit ci request RESOURCE [ROLE] [DURATION] --wait`` files, waits for the grant, and prints the access
details, which it alone can open (it makes a fresh X25519 key pair per request; see
``bot.adapters.sealed_box``). Giving up (``--timeout``, SIGINT, SIGTERM) releases the request, so nothing is
granted to a job that is gone. ``jit ci release ID`` gives the access back; ``jit ci token NAME`` makes a token.

Settings come from the environment: ``JIT_URL`` and ``JIT_TOKEN``. The token is never a flag (shell history,
``ps``) and never printed. Progress goes to stderr; stdout carries only the result.

Exit codes: 0 done, 1 refused (denied, expired, cancelled, failed, over a limit), 2 a usage, setting or
connection problem, 3 timed out waiting (the request was released), 130/143 interrupted (released).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
import urllib.error
import urllib.request
from types import FrameType
from typing import Any, NoReturn

from bot.adapters.sealed_box import Recipient, SealedBoxError
from bot.api.tokens import NAME, hash_token, new_token
from bot.core.durations import DurationError, parse_duration

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 3
ENDED = {'denied', 'expired', 'cancelled', 'failed', 'revoked'}


class Stop(Exception):
    """End the command with this exit code and message (on stderr)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def add_arguments(parser: argparse.ArgumentParser) -> None:
    tools = parser.add_subparsers(dest='ci_command', required=True, metavar='TOOL')
    req = tools.add_parser('request', help='file a request; with --wait, wait for the grant and print the details')
    req.add_argument('resource')
    req.add_argument('role', nargs='?')
    req.add_argument('duration', nargs='?', help='e.g. 15m, 2h (default: the rule\'s default_duration)')
    req.add_argument('--reason', default='')
    req.add_argument('--ticket')
    req.add_argument('--context', action='append', default=[], metavar='KEY=VALUE',
                     help='what the job does, matched by trigger: {pipeline: EVENT, ...} (event=pr_merge)')  # fmt: skip
    req.add_argument('--wait', action='store_true', help='wait until the access is granted (or refused)')
    req.add_argument('--timeout', default='15m', help='how long --wait waits before releasing (default 15m)')
    req.add_argument('--format', choices=('text', 'env', 'json'), default='text')
    req.add_argument('--url', help='the jit server (default: JIT_URL)')
    rel = tools.add_parser('release', help='give the access back now (or cancel the pending request)')
    rel.add_argument('request_id')
    rel.add_argument('--url', help='the jit server (default: JIT_URL)')
    tok = tools.add_parser('token', help='make a token for a pipeline and print the hash for JIT_API_TOKENS')
    tok.add_argument('name')


class Client:
    """The API over urllib: JSON in, JSON out, statuses as they come."""

    def __init__(self, url: str | None, token: str | None) -> None:
        url = url or os.environ.get('JIT_URL') or ''
        if not re.match(r'^https?://[^/\s]+', url):
            raise Stop(EXIT_USAGE, 'JIT_URL is not set to the jit server (e.g. https://jit.example.com)')
        if not token:
            raise Stop(EXIT_USAGE, 'JIT_TOKEN is not set (the pipeline\'s token, from `jit ci token NAME`)')
        self.base, self.token = url.rstrip('/') + '/api/v1', token

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any], dict[str, str]]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {'Authorization': f'Bearer {self.token}', 'Accept': 'application/json'}
        if data is not None:
            headers['Content-Type'] = 'application/json'
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as answer:
                return answer.status, _json(answer.read()), dict(answer.headers)
        except urllib.error.HTTPError as err:
            return err.code, _json(err.read()), dict(err.headers)
        except (urllib.error.URLError, OSError) as exc:
            why = getattr(exc, 'reason', exc)
            raise Stop(EXIT_USAGE, f'cannot reach {self.base}: {why}') from None


def _json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw or b'{}')
    except ValueError:
        return {'error': 'the server did not answer JSON'}
    return data if isinstance(data, dict) else {'error': 'the server did not answer an object'}


def _problem(status: int, answer: dict[str, Any]) -> Stop:
    error = str(answer.get('error') or f'HTTP {status}')
    if status == 403:
        allowed = answer.get('allowed') or []
        return Stop(EXIT_REFUSED, error + (f'\nallowed: {", ".join(map(str, allowed))}' if allowed else ''))
    if status == 429:
        return Stop(EXIT_REFUSED, error)
    return Stop(EXIT_USAGE if status < 500 else EXIT_REFUSED, f'{error} (HTTP {status})')


def say(text: str) -> None:
    print(f'jit: {text}', file=sys.stderr, flush=True)


def release(client: Client, request_id: str, *, patience: float = 30.0) -> dict[str, Any]:
    """Release, waiting out a grant in progress (409 with Retry-After) for up to ``patience`` seconds."""
    give_up = time.monotonic() + patience
    while True:
        status, answer, headers = client.call('POST', f'/requests/{request_id}/release')
        if status in (200, 202):
            return answer
        if status in (409, 503) and time.monotonic() < give_up:
            time.sleep(min(5.0, float(headers.get('Retry-After') or 2)))
            continue
        raise _problem(status, answer)


def _context(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, eq, value = pair.partition('=')
        if not eq or not key:
            raise Stop(EXIT_USAGE, f'--context {pair!r}: expected KEY=VALUE')
        out[key] = value
    return out


def _output(view: dict[str, Any], details: dict[str, Any], fmt: str) -> str:
    if fmt == 'json':
        return json.dumps({**view, 'details': details}, indent=2)
    if fmt == 'env':
        lines = [f'JIT_REQUEST_ID={view["id"]}', f'JIT_EXPIRES_AT={view.get("expires_at") or ""}']
        for key, value in details.items():
            text = value if isinstance(value, str) else json.dumps(value)
            if '\n' in text or '\r' in text:
                raise Stop(EXIT_REFUSED, f'detail {key!r} spans lines and cannot be one env line; use --format json')
            lines.append(f'JIT_{re.sub(r"[^A-Za-z0-9]", "_", key).upper()}={text}')
        return '\n'.join(lines)
    lines = [f'request {view["id"]} {view["status"]} until {view.get("expires_at")}']
    return '\n'.join(lines + [f'{key}: {value}' for key, value in details.items()])


def request(args: argparse.Namespace) -> int:
    try:
        timeout = parse_duration(args.timeout)
    except DurationError as exc:
        raise Stop(EXIT_USAGE, f'--timeout: {exc}') from None
    client = Client(args.url, os.environ.get('JIT_TOKEN'))
    me = Recipient()
    body: dict[str, Any] = {'resource': args.resource, 'public_key': me.public_key}
    for key in ('role', 'duration', 'ticket', 'reason'):
        if getattr(args, key):
            body[key] = getattr(args, key)
    if args.context:
        body['context'] = _context(args.context)
    status, filed, _ = client.call('POST', '/requests', body)
    if status != 201:
        raise _problem(status, filed)
    request_id = str(filed['id'])
    say(f'filed {request_id}: {filed["status"]} ({filed.get("decision") or filed.get("rule")})')
    if not args.wait:
        print(f'JIT_REQUEST_ID={request_id}' if args.format == 'env' else
              json.dumps(filed) if args.format == 'json' else request_id)  # fmt: skip
        return EXIT_OK

    def give_back(signum: int, _frame: FrameType | None) -> NoReturn:
        raise Stop(128 + signum, f'interrupted: released {request_id}')

    previous = {s: signal.signal(s, give_back) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _wait(client, me, request_id, timeout, args.format)
    except Stop as stop:
        if stop.code in (EXIT_TIMEOUT, 128 + signal.SIGINT, 128 + signal.SIGTERM):
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                release(client, request_id)
            except Stop as failed:
                say(f'could not release {request_id}: {failed.message}')
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait(client: Client, me: Recipient, request_id: str, timeout: float, fmt: str) -> int:
    deadline, delay, last = time.monotonic() + timeout, 1.0, ''
    while True:
        status, view, _ = client.call('GET', f'/requests/{request_id}')
        if status == 200:
            state = str(view.get('status'))
            if state != last:
                say(f'{request_id}: {state}')
                last = state
            if state in ('active', 'revoke_failed'):
                details: dict[str, Any] = {}
                if view.get('details'):
                    try:
                        details = me.open(view['details'], request_id=request_id)
                    except SealedBoxError as exc:
                        raise Stop(EXIT_REFUSED, f'the access details cannot be opened: {exc}') from None
                print(_output(view, details, fmt), flush=True)
                return EXIT_OK
            if state in ENDED:
                why = view.get('deny_reason') or view.get('error') or ''
                raise Stop(EXIT_REFUSED, f'{request_id} {state}' + (f': {why}' if why else ''))
        elif status != 503:
            raise _problem(status, view)
        if time.monotonic() + delay > deadline:
            raise Stop(EXIT_TIMEOUT, f'no grant within the timeout: released {request_id}')
        time.sleep(delay)
        delay = min(5.0, delay * 1.5)


def token(args: argparse.Namespace) -> int:
    if not NAME.match(args.name):
        raise Stop(EXIT_USAGE, 'a pipeline name is 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit')
    secret = new_token()
    print(f'token for pipeline:{args.name} (shown once; put it in the pipeline\'s secret store as JIT_TOKEN):')
    print(f'  {secret}')
    print(
        'add this entry to JIT_API_TOKENS on the jit server (only the hash: it cannot be turned back into the token):'
    )
    print(f'  {args.name}:{hash_token(secret)}')
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    try:
        if args.ci_command == 'token':
            return token(args)
        if args.ci_command == 'release':
            client = Client(args.url, os.environ.get('JIT_TOKEN'))
            answer = release(client, args.request_id)
            state = answer.get('status')
            say(
                f'{args.request_id}: '
                + ('access ends now' if answer.get('ending') else f'{state}, nothing to give back')
            )
            return EXIT_OK
        return request(args)
    except Stop as stop:
        say(stop.message)
        return stop.code
