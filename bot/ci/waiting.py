"""The calls of ``jit ci`` that wait: filing through a lost answer, polling until granted, releasing.

Each is a loop with its own patience, and each takes ``clock`` and ``sleep`` so the tests run it on a
fake clock without sleeping. Only what is safe to ask again is asked again: on filing, a lost answer,
502/503/504 and 409 with ``Retry-After`` (the POST carries an ``Idempotency-Key``, so the server files it
once however often it is sent); a 409 (a grant in progress) or 502/503/504 on release; and while waiting
for the grant, no answer or 502/503/504, until ``--timeout``. Any other answer ends the loop.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from bot.ci.client import CALL_TIMEOUT, Client, _refusal
from bot.ci.errors import EXIT_REFUSED, AnswerLost, CiError, TimedOut, Unreachable, Unusable
from bot.ci.output import describe_release, say
from bot.core.durations import format_duration
from bot.core.model import FINAL_STATUSES, RequestStatus
from bot.sealed_box import Recipient, SealedBoxError

S = RequestStatus

#: ``--wait`` asks this often at first, then half as often again each time up to POLL_MAX: a grant
#: usually comes within seconds, an approver in Slack may take minutes.
POLL_FIRST, POLL_MAX = 1.0, 5.0
#: How long a release waits out a grant in progress (409 with Retry-After) or a store that does not
#: answer (503): long enough for a grant to finish, short enough for a CI runner's cancel grace period.
RELEASE_PATIENCE = 30.0
#: How long a release waits (as RELEASE_PATIENCE) after SIGINT or SIGTERM: runners follow those with SIGKILL
#: within seconds.
INTERRUPTED_PATIENCE = 5.0
#: How long filing asks again after no answer or 502/503/504 (safe: the Idempotency-Key files it once).
FILE_PATIENCE = 30.0
_REQUEST_ID = re.compile(r'r-[a-z0-9]{8}')
#: Statuses that mean "not now" from the server or a proxy in front of it; waiting may help.
_TRANSIENT = {502, 503, 504}


def file_request(client: Client, body: dict[str, Any], *, check: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:  # fmt: skip
    """POST the request: its view on 201 (or 200, the answer to a retry of a POST that filed it).

    Every try carries one ``Idempotency-Key``, made for this call, so a lost answer, 502/503/504 and a 409 with
    ``Retry-After`` (the same key being filed at this moment) are asked again for up to FILE_PATIENCE, and
    the server files the request once. ``check`` runs around each pause, where a signal noted meanwhile may
    end the command.
    """
    give_up = clock() + FILE_PATIENCE
    headers = {'Idempotency-Key': secrets.token_urlsafe(24)}
    while True:
        try:
            answer = client.call('POST', '/requests', body, headers=headers)
        except AnswerLost as exc:  # it may have been filed: the same key asks for it (a refused one is not asked)
            if clock() >= give_up:
                raise
            problem, pause = exc.message, 2.0
        else:
            if answer.status in (200, 201) and isinstance(answer.body.get('id'), str):
                return answer.body
            retry = answer.status in _TRANSIENT or (answer.status == 409 and 'retry-after' in answer.headers)
            if not retry or clock() >= give_up:
                raise _refusal(answer)
            problem, pause = answer.error, answer.retry_after(2.0)
        say(f'{problem}; trying again')
        check()
        sleep(min(pause, POLL_MAX, max(0.1, give_up - clock())))
        check()


def wait_for_grant(client: Client, recipient: Recipient, request_id: str, *, timeout: float,
                   seen: str | None = None, clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """Poll until the request is active: its view and the opened details.

    Every read that sees ``active`` carries the sealed details (until the release), so they are opened from
    the first such answer that arrives. Connection failures and 502/503/504 are waited out until ``timeout``. Each
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


def give_back(client: Client, request_id: str, *, patience: float) -> str:
    """Release after giving up or when done, and say how it went (never raises: the command is ending anyway)."""
    try:
        return 'released: ' + describe_release(release(client, request_id, patience=patience))
    except CiError as exc:
        return f'could not release {request_id}: {exc.message}'
