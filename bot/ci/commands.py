"""The tools of ``jit ci``: their arguments, and each run from settings to exit code.

``request`` files (signals held, so a request filed as the job is cancelled is still released), waits
if asked, and prints; whatever ends it early - ``--timeout``, SIGINT, SIGTERM, details that cannot be
handed over - gives the request back before the exit. ``run`` does the same and then runs a command with
the access (:mod:`bot.ci.running`). ``release`` and ``token`` are one step each.
"""

from __future__ import annotations

import argparse
import os
import signal
from collections.abc import Mapping
from typing import Any

from bot.api.tokens import NAME, hash_token, new_token
from bot.ci.client import Client
from bot.ci.errors import EXIT_OK, CiError, TimedOut, Unusable, _Interrupted
from bot.ci.output import describe_release, format_filed, format_result, say
from bot.ci.running import EXIT_RUN_REFUSED, run_command
from bot.ci.signals import _Signals
from bot.ci.target import load_target
from bot.ci.waiting import INTERRUPTED_PATIENCE, RELEASE_PATIENCE, file_request, give_back, release, wait_for_grant
from bot.core.durations import DurationError, looks_like_duration, parse_duration
from bot.sealed_box import Recipient

DEFAULT_TIMEOUT = '15m'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    tools = parser.add_subparsers(dest='ci_command', required=True, metavar='TOOL')
    url_help = 'where jit serve answers, e.g. https://jit.example.com (default: JIT_URL)'
    req = tools.add_parser(
        'request', help='file a request; with --wait, wait for the grant and print the access details',
        description='File a request as the pipeline JIT_TOKEN names. ROLE and DURATION left out, the rule decides '
                    "them (a resource's only role, the rule's default_duration).")  # fmt: skip
    _request_arguments(req, url_help)
    req.add_argument('--wait', action='store_true', help='wait for the grant and print the access details')
    req.add_argument('--timeout', default=DEFAULT_TIMEOUT,
                     help=f'with --wait: give up and release after this long (default {DEFAULT_TIMEOUT})')  # fmt: skip
    req.add_argument('--format', choices=('text', 'env', 'json'), default='text',
                     help='text (default); env: JIT_NAME=value lines for $GITHUB_ENV; json: one object')  # fmt: skip
    run_tool = tools.add_parser(
        'run', usage='jit ci run RESOURCE [ROLE] [DURATION] [options] -- COMMAND [ARGS...]',
        help='request access, wait for it, run COMMAND with the access details in its environment, release',
        description='File a request, wait for the grant, run COMMAND with the lines --format env prints '
                    '(JIT_REQUEST_ID, JIT_EXPIRES_AT, JIT_<DETAIL>) in its environment, and release when it '
                    "exits, whatever its status. Exits with the command's status; 124: not granted within "
                    '--timeout; 125: refused, or a problem of jit itself; 126/127: COMMAND cannot be run or '
                    'is not found; 128+N: jit got signal N (passed on to COMMAND; the access is released at '
                    'once).')  # fmt: skip
    _request_arguments(run_tool, url_help)
    run_tool.add_argument('--timeout', default=DEFAULT_TIMEOUT,
                          help=f'give up and release if not granted after this long (default '
                               f'{DEFAULT_TIMEOUT})')  # fmt: skip
    rel = tools.add_parser('release', help='give the access back now, or cancel the request while it is pending')
    rel.add_argument('request_id', metavar='ID')
    rel.add_argument('--url', help=url_help)
    tok = tools.add_parser('token', help='make a token for pipeline NAME and the hash line for JIT_API_TOKENS')
    tok.add_argument('name', metavar='NAME')


def _request_arguments(parser: argparse.ArgumentParser, url_help: str) -> None:
    """What ``request`` and ``run`` ask for alike."""
    parser.add_argument('resource')
    parser.add_argument('role', nargs='?', help='the role (may be left out when the resource has one)')
    parser.add_argument('duration', nargs='?', help="how long, e.g. 15m, 2h (default: the rule's default_duration)")
    parser.add_argument('--reason', default='', help='why, as approvers and the audit trail see it')
    parser.add_argument('--ticket', help='a ticket reference, for rules that require one')
    parser.add_argument('--context', action='append', default=[], metavar='KEY=VALUE',
                        help='what the job is doing, matched by rules with trigger: {pipeline: EVENT, ...}; '
                             'repeat it (--context event=pr_merge --context branch=production)')  # fmt: skip
    parser.add_argument('--url', help=url_help)


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    """``jit ci TOOL``: the exit code; every problem is one line on stderr."""
    try:
        if args.ci_command == 'token':
            return make_token(args.name)
        if args.ci_command == 'run' and not getattr(args, 'program', None):
            raise CiError('name the command to run after --: jit ci run RESOURCE [ROLE] [DURATION] -- COMMAND '
                          '[ARGS...]')  # fmt: skip
        client = Client(load_target(args.url, environ))
        if args.ci_command == 'release':
            return release_command(client, args.request_id)
        if args.ci_command == 'run':
            recipient = Recipient()
            return run_command(client, request_body(args, recipient), recipient, timeout=_timeout(args),
                               program=args.program, environ=environ)  # fmt: skip
        return request_command(client, args)
    except CiError as exc:
        say(exc.message)
        return EXIT_RUN_REFUSED if args.ci_command == 'run' else exc.code
    except KeyboardInterrupt:  # Ctrl-C before a request exists: nothing to give back
        return 128 + signal.SIGINT
    except _Interrupted as stop:  # a signal in the instant before the release began
        return 128 + stop.signum


def _timeout(args: argparse.Namespace) -> float:
    try:
        return parse_duration(args.timeout)
    except DurationError as exc:
        raise CiError(f'--timeout: {exc}') from None


def request_body(args: argparse.Namespace, recipient: Recipient) -> dict[str, Any]:
    """The POST body of ``request`` and ``run``, with ``recipient``'s public key for the details."""
    role, duration = args.role, args.duration
    if duration is None and role is not None and looks_like_duration(role):
        role, duration = None, role  # `jit ci request demo-app 15m`: the resource's only role, for 15m
    body: dict[str, Any] = {'resource': args.resource, 'public_key': recipient.public_key}
    optional = {'role': role, 'duration': duration, 'reason': args.reason, 'ticket': args.ticket,
                'context': parse_context(args.context)}  # fmt: skip
    body.update({key: value for key, value in optional.items() if value})
    return body


def request_command(client: Client, args: argparse.Namespace) -> int:
    timeout = _timeout(args)
    recipient = Recipient()
    body = request_body(args, recipient)
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
