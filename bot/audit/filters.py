"""Which events a query keeps: ``--user``, ``--resource``, ``--role``, ``--event``, ``--since``,
``--until``, ``--request``. Pure: the tools hand in the records and ``now``.

Times are UTC. ``--since``/``--until`` take an ISO date or time (``2026-11-01``,
``2026-11-01T09:30``, ``2026-11-01T09:30+01:00``) or a duration meaning "that long ago" (``7d``,
``12h``, ``1h30m``). The period is ``since <= time < until``; a bare date as ``--until`` means the
*end* of that day, so ``--since 2026-11-01 --until 2026-11-30`` is the whole of November.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.audit.records import request_of
from bot.core.durations import DurationError, DurationTooLong, parse_duration
from bot.core.model import AuditName

#: The audit events jit writes (``--event`` warns about other names; patterns like ``grant.*`` work).
KNOWN_EVENTS = tuple(AuditName)
#: Names people reach for that are not events of their own, and what to ask for instead.
NOT_EVENTS = {
    'policy.rejected': 'a refused policy is recorded as policy.loaded with outcome "rejected"',
}


class TimeError(ValueError):
    """Text that is neither a date nor a duration; the message says what would work."""


def parse_when(text: str, *, now: float, end: bool = False) -> float:
    """Unix seconds for ``text``: an ISO date/time (UTC unless it says otherwise) or a duration ago.

    Args:
        end: the upper bound of a period: a bare date is the end of that day.
    """
    value = text.strip()
    try:
        return now - parse_duration(value)
    except DurationTooLong as exc:  # a duration, but further back than anything jit keeps
        raise TimeError(str(exc)) from None
    except DurationError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        message = f'{text!r} is neither a date (2026-11-01, 2026-11-01T09:30Z) nor a duration (7d, 12h)'
        raise TimeError(message) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if end and len(value) == 10:  # a bare date: through the end of that day
        moment += timedelta(days=1)
    return moment.timestamp()


def event_warnings(patterns: Iterable[str]) -> list[str]:
    """What is odd about ``--event`` values (a typo matches nothing and the query looks empty)."""
    out = []
    for pattern in patterns:
        if pattern in NOT_EVENTS:
            out.append(f'{pattern} is not an audit event: {NOT_EVENTS[pattern]}')
        elif not fnmatch.filter(KNOWN_EVENTS, pattern):
            out.append(f'{pattern!r} matches no event jit writes ({", ".join(KNOWN_EVENTS)})')
    return out


def identities(record: dict[str, Any]) -> set[str]:
    """Every name of the requester and the actor of an event, lower-cased."""
    out = set()
    requester = request_of(record).get('requester') or {}
    for key in ('slack_id', 'email'):
        if requester.get(key):
            out.add(str(requester[key]).lower())
    if requester.get('pipeline'):
        out.add(f'pipeline:{requester["pipeline"]}'.lower())
    if record.get('actor'):
        out.add(str(record['actor']).lower())
    return out


def aliases(records: Iterable[dict[str, Any]]) -> dict[str, set[str]]:
    """Slack ID <-> email, as requests name people: so ``--user sam@example.com`` finds sam's approvals too.

    Actors are recorded by Slack ID; a person's email is known from the requests they filed, and from the
    events they acted in on someone else's request (``detail.actor_email``).
    """
    links: dict[str, set[str]] = {}
    for record in records:
        requester = request_of(record).get('requester') or {}
        detail = record.get('detail')
        detail = detail if isinstance(detail, dict) else {}
        pairs = [(requester.get('slack_id'), requester.get('email')), (record.get('actor'), detail.get('actor_email'))]
        for slack_id, email in pairs:
            if slack_id and email:
                a, b = str(slack_id).lower(), str(email).lower()
                links.setdefault(a, {a}).add(b)
                links.setdefault(b, {b}).add(a)
    return links


@dataclass(frozen=True, slots=True)
class EventFilter:
    """The conditions of a query; an empty filter keeps everything."""

    users: frozenset[str] = frozenset()
    resource: str | None = None
    role: str | None = None
    events: tuple[str, ...] = ()
    since: float | None = None
    until: float | None = None
    request: str | None = None
    from_seq: int | None = None
    to_seq: int | None = None

    def matches(self, record: dict[str, Any]) -> bool:
        req = request_of(record)
        seq, time = record.get('seq', 0), record.get('time', 0)
        if (self.from_seq is not None and seq < self.from_seq) or (self.to_seq is not None and seq > self.to_seq):
            return False
        if (self.since is not None and time < self.since) or (self.until is not None and time >= self.until):
            return False
        if self.resource is not None and req.get('resource') != self.resource:
            return False
        if self.role is not None and req.get('role') != self.role:
            return False
        if self.events and not any(fnmatch.fnmatchcase(str(record.get('event')), p) for p in self.events):
            return False
        if self.request is not None:
            detail = record.get('detail') or {}
            if self.request not in (req.get('id'), detail.get('extends'), detail.get('extension')):
                return False
        return not self.users or bool(self.users & identities(record))
