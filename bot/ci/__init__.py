"""``jit ci``: the pipelines' client of the HTTP API (:mod:`bot.api.server`), on the standard library alone.

=====================================================  ===================================================
``jit ci request RESOURCE [ROLE] [DURATION] --wait``   file, wait for the grant, print the access details
``jit ci request RESOURCE ...`` (no ``--wait``)        file, print the request's ID and status
``jit ci run RESOURCE [ROLE] [DURATION] -- CMD ARGS``  file, wait, run CMD with the access in its environment,
                                                       release when it exits; exit with its status
``jit ci release ID``                                  give the access back now (or cancel while pending)
``jit ci token NAME``                                  a new token, and the hash line for ``JIT_API_TOKENS``
=====================================================  ===================================================

Settings come from the environment: ``JIT_URL`` (where ``jit serve`` answers; ``--url`` overrides it) and
``JIT_TOKEN``. The token is never a flag, so it lands in neither shell history nor ``ps``, and it is
never printed. Progress goes to stderr; stdout carries only the result, so ``--format env >> $GITHUB_ENV``
and ``--format json | jq`` work.

Each request gets a fresh X25519 key pair (:class:`bot.sealed_box.Recipient`); only the public
half is sent, the worker seals the details to it with standard HPKE (RFC 9180, so a pipeline without jit
opens them with any HPKE library), and the server hands the box over with every read that sees ``active``
until the grant is released or ends, so a lost answer is read again. A pipeline that gives up (``--timeout``, SIGINT,
SIGTERM) releases its request first, so nothing is granted to a job that is gone.

Exit codes::

    0    done (granted and printed; filed; released; token made)
    1    refused or ended: the policy refuses (403), over a limit (429), denied, expired, cancelled,
         failed, revoked, or the access came but cannot be handed over (it is then released)
    2    a usage, setting or connection problem, or the server says the call is wrong (400, 401, 404, 422)
    3    --wait timed out (the request was released)

``jit ci run`` exits with the command's status instead, and 124/125/126/127 for what kept it from running
(:mod:`bot.ci.running`).

The package, each module importing only those above it::

    errors.py    CiError and its kinds, the exit codes
    output.py    stderr lines (say) and the result in --format
    target.py    --url / JIT_URL and JIT_TOKEN, checked
    client.py    the HTTP calls over a transport (urllib, or a test's fake); answers as exit codes
    signals.py   SIGINT / SIGTERM noted while filing, raised where the request can still be released
    waiting.py   filing, waiting for the grant, releasing: the loops with patience
    running.py   run: the command with the access in its environment, released when it exits
    commands.py  add_arguments, run, and the request / run / release / token tools

It imports nothing of the server's side but :mod:`bot.api.tokens` (the token format, for ``jit ci
token``), :mod:`bot.sealed_box` and :mod:`bot.core`: never adapters, use cases, listeners or workers
(``tests/test_architecture.py``), so a pipeline runs it without Redis, RQ or Slack.
"""

from __future__ import annotations

from bot.ci.client import Answer, Client, Transport
from bot.ci.commands import add_arguments, make_token, release_command, request_command, run
from bot.ci.errors import EXIT_OK, EXIT_REFUSED, EXIT_TIMEOUT, EXIT_USAGE, CiError, TimedOut, Unreachable, Unusable
from bot.ci.errors import _Interrupted as _Interrupted
from bot.ci.output import describe_release, format_filed, format_result, say
from bot.ci.signals import _Signals as _Signals
from bot.ci.target import Target, load_target
from bot.ci.waiting import file_request, release, wait_for_grant

# The interface. ``_Interrupted`` and ``_Signals`` are not part of it; they are re-exported above (``X as X``)
# only so that the tests of signal handling reach them as ``ci._Signals``, as when the package was one module.
__all__ = [
    'EXIT_OK',
    'EXIT_REFUSED',
    'EXIT_TIMEOUT',
    'EXIT_USAGE',
    'Answer',
    'CiError',
    'Client',
    'Target',
    'TimedOut',
    'Transport',
    'Unreachable',
    'Unusable',
    'add_arguments',
    'describe_release',
    'file_request',
    'format_filed',
    'format_result',
    'load_target',
    'make_token',
    'release',
    'release_command',
    'request_command',
    'run',
    'say',
    'wait_for_grant',
]
