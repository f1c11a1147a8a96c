"""``jit ci run``: file, wait for the grant, run a command with the access in its environment, give it back.

The command gets the lines ``--format env`` prints (``JIT_REQUEST_ID``, ``JIT_EXPIRES_AT``, ``JIT_<DETAIL>``)
as environment variables, on top of jit's own environment, and inherits stdin, stdout and stderr. When it
exits, whatever its status, the access is released; SIGINT or SIGTERM to jit is passed on to the command,
the access is released at once (a CI runner follows with SIGKILL within seconds), and the command is given
CHILD_GRACE seconds to finish before it is killed.

Exit codes (those of ``env`` and ``timeout``, so that a workflow tells them from the command's own)::

    the command's status   it ran (128 + N when a signal N ended it)
    124                    not granted within --timeout (the request was released)
    125                    refused, denied, expired, failed, or jit's own problem (settings, connection,
                           details that cannot be handed over); the command did not run
    126                    the command cannot be run (not executable); 127: not found. The access is released
    128 + N               jit got signal N (SIGINT 130, SIGTERM 143) before the command ran or while it ran
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from bot.ci.client import Client
from bot.ci.errors import CiError, TimedOut, _Interrupted
from bot.ci.output import format_result, say
from bot.ci.signals import _Signals
from bot.ci.waiting import INTERRUPTED_PATIENCE, RELEASE_PATIENCE, file_request, give_back, wait_for_grant
from bot.sealed_box import Recipient

EXIT_RUN_TIMEOUT, EXIT_RUN_REFUSED, EXIT_CANNOT_RUN, EXIT_NOT_FOUND = 124, 125, 126, 127
#: How long the command has to end after jit passed it SIGINT or SIGTERM, before it is killed.
CHILD_GRACE = 5.0


def run_command(client: Client, body: dict[str, Any], recipient: Recipient, *, timeout: float,
                program: Sequence[str], environ: Mapping[str, str]) -> int:  # fmt: skip
    """File ``body``, wait for the grant, run ``program`` with the access, release; the exit code above."""
    request_id: str | None = None
    child: subprocess.Popen[bytes] | None = None
    with _Signals() as signals:
        try:
            with signals.held():
                filed = file_request(client, body, check=signals.check)
                request_id = str(filed['id'])
            say(f'filed {request_id}: {filed.get("status")} ({filed.get("decision") or filed.get("rule")})')
            signals.check()
            view, details = wait_for_grant(client, recipient, request_id, timeout=timeout, seen=filed.get('status'))
            env = {**environ, **access_environment(view, details)}
            with signals.held():
                child = _start(program, env)
                say(f'{request_id} active until {view.get("expires_at")}: running {program[0]}')
            signals.check()
            code = exit_status(child.wait())
            signals.silence()
            ending, patience = f'{program[0]} exited with {code}', RELEASE_PATIENCE
        except _Interrupted as stop:
            signals.silence()
            name = signal.Signals(stop.signum).name
            if child is not None and child.poll() is None:
                child.send_signal(stop.signum)
                name += f', passed on to {program[0]}'
            code, ending, patience = 128 + stop.signum, name, INTERRUPTED_PATIENCE
        except TimedOut as exc:
            code, ending, patience = EXIT_RUN_TIMEOUT, exc.message, RELEASE_PATIENCE
        except CiError as exc:
            code = exc.code if exc.code in (EXIT_CANNOT_RUN, EXIT_NOT_FOUND) else EXIT_RUN_REFUSED
            ending, patience = exc.message, RELEASE_PATIENCE
        if request_id is None:
            say(f'{ending}: nothing was filed')
        else:
            say(f'{ending}; {give_back(client, request_id, patience=patience)}')
        if child is not None and child.poll() is None:
            _end_child(child, program[0])
        return code


def access_environment(view: dict[str, Any], details: dict[str, Any]) -> dict[str, str]:
    """The variables ``--format env`` prints, as a mapping (same names, same refusals)."""
    env = {}
    for line in format_result(view, details, 'env').splitlines():
        name, _, value = line.partition('=')
        env[name] = value
    return env


def exit_status(returncode: int) -> int:
    """A child's status as a shell reports it: 128 + N for a child ended by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def _start(program: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(list(program), env=dict(env))
    except FileNotFoundError:
        raise CiError(f'{program[0]}: command not found', EXIT_NOT_FOUND) from None
    except OSError as exc:
        raise CiError(f'{program[0]}: cannot run it: {(exc.strerror or str(exc)).lower()}', EXIT_CANNOT_RUN) from None


def _end_child(child: subprocess.Popen[bytes], name: str) -> None:
    try:
        child.wait(timeout=CHILD_GRACE)
    except subprocess.TimeoutExpired:
        say(f'{name} did not end within {CHILD_GRACE:g} s of the signal: killed')
        child.kill()
        child.wait()


__all__ = ['EXIT_CANNOT_RUN', 'EXIT_NOT_FOUND', 'EXIT_RUN_REFUSED', 'EXIT_RUN_TIMEOUT', 'run_command']
