"""A jit wired on a real Redis with a fake clock, and a seeded history of access to ``prod-db`` around November 2026.

:class:`Jit` builds the REAL use cases (submit, approve, deny, cancel, grant, extend, release, admin revoke,
revoke) over :class:`~bot.adapters.redis_store.RedisStore`, with the fake clock and recording queue of
``tests/stateful/test_lifecycle_machine.py`` and a provider that grants (or refuses when ``refuse`` is set).
:func:`seed_november` files the requests that the report test asks about ("who had access to prod-db in
November?") and returns the IDs of the grants that must be in the answer.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import redis

from bot.adapters.redis_store import RedisStore
from bot.core.errors import PermanentProviderError
from bot.core.model import AccessRequest, Principal
from bot.usecases.decide_request import ApproveRequest, DenyRequest
from bot.usecases.end_access import EndAccess
from bot.usecases.extend_grant import ExtendGrant
from bot.usecases.grant_access import GrantAccess
from bot.usecases.revoke_access import RevokeAccess
from bot.usecases.submit_request import SubmitRequest
from tests.core.policy_fixtures import ALEX, DANA, EVE, SAM, SEC, policy
from tests.stateful.test_lifecycle_machine import FakeClock, FakeQueue


def ts(text: str) -> float:
    """Unix seconds of an ISO time (UTC)."""
    return datetime.fromisoformat(text).timestamp()


class Provider:
    """Grants and revokes at once; refuses every grant while ``refuse`` is set."""

    def __init__(self) -> None:
        self.refuse = False

    def grant(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        if self.refuse:
            raise PermanentProviderError('refused')
        return {}

    def revoke(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> None:
        return None


class Jit:
    """The use cases of one jit installation on ``client`` under ``prefix``."""

    def __init__(self, client: redis.Redis, prefix: str = 'jit:') -> None:
        self.clock = FakeClock(ts('2026-10-01T00:00:00+00:00'))
        self.store = RedisStore(client, clock=self.clock, prefix=prefix)
        self.queue = FakeQueue(self.clock)
        self.provider = Provider()
        self.policy = policy()
        counter = itertools.count(1)
        new_id = lambda: f'r-{next(counter):04d}'  # noqa: E731
        kw: dict[str, Any] = {'store': self.store, 'queue': self.queue, 'policy': lambda: self.policy}
        self.submit = SubmitRequest(**kw, clock=self.clock, new_id=new_id)
        self.approve = ApproveRequest(**kw, clock=self.clock)
        self.deny = DenyRequest(**kw)
        self.end = EndAccess(**kw, clock=self.clock)
        self.extend = ExtendGrant(**kw, clock=self.clock, new_id=new_id)
        self.grant = GrantAccess(**kw, clock=self.clock, provider=lambda name: self.provider,
                                 on_details=lambda request, details: None)  # fmt: skip
        self.revoke = RevokeAccess(**kw, clock=self.clock, provider=lambda name: self.provider,
                                   sleep=self.clock.advance)  # fmt: skip

    def at(self, when: str) -> Jit:
        """Move the clock to ``when`` (never back: the trail is in time order, as a real one is)."""
        assert ts(when) >= self.clock.t, f'{when} is before the clock'
        self.clock.t = ts(when)
        return self

    def file(self, who: Principal, resource: str, role: str | None, duration: int | None, reason: str) -> str:
        return self.submit.execute(requester=who, resource=resource, role=role, duration=duration, reason=reason).id


def seed_november(jit: Jit) -> dict[str, str]:
    """Requests around November 2026; returns ``{label: request id}`` (the five November grants are marked)."""
    ids: dict[str, str] = {}
    # October only.
    rid = ids['october'] = jit.at('2026-10-10T10:00:00+00:00').file(DANA, 'prod-db', 'read', 1800, 'INC-2 october')
    jit.at('2026-10-10T10:01:00+00:00').approve.execute(rid, SEC)
    jit.grant.execute(rid)
    jit.at('2026-10-10T10:31:00+00:00').revoke.execute(rid)
    # Granted on Oct 31 for 2 hours: access ran into November 1st.
    rid = ids['overnight'] = jit.at('2026-10-31T22:00:00+00:00').file(ALEX, 'prod-db', 'read', 7200, 'INC-1 overnight')
    jit.at('2026-10-31T22:05:00+00:00').approve.execute(rid, SAM)
    jit.at('2026-10-31T22:06:00+00:00').grant.execute(rid)
    jit.at('2026-11-01T00:06:00+00:00').revoke.execute(rid)
    # Released early by the grantee.
    rid = ids['released'] = jit.at('2026-11-10T09:00:00+00:00').file(ALEX, 'prod-db', 'read', 3600, 'INC-3 orders')
    jit.at('2026-11-10T09:02:00+00:00').approve.execute(rid, SEC)
    jit.at('2026-11-10T09:03:00+00:00').grant.execute(rid)
    jit.at('2026-11-10T09:30:00+00:00').end.release(rid, ALEX)
    jit.revoke.execute(rid)
    # Denied: never had access.
    rid = ids['denied'] = jit.at('2026-11-12T08:00:00+00:00').file(DANA, 'prod-db', 'read', 900, 'INC-4 curious')
    jit.at('2026-11-12T08:10:00+00:00').deny.execute(rid, SAM, 'no ticket context')
    # Break-glass, revoked by an admin.
    rid = ids['break_glass'] = jit.at('2026-11-15T03:00:00+00:00').file(SEC, 'prod-db', 'write', 1800, 'INC-9 outage')
    jit.at('2026-11-15T03:00:30+00:00').grant.execute(rid)
    jit.at('2026-11-15T03:10:00+00:00').end.revoke(rid, SEC)
    jit.revoke.execute(rid)
    # Another resource in November.
    rid = ids['demo'] = jit.at('2026-11-16T12:00:00+00:00').file(EVE, 'demo', None, 300, 'demo')
    jit.at('2026-11-16T12:01:00+00:00').approve.execute(rid, SAM)
    jit.grant.execute(rid)
    jit.at('2026-11-16T12:06:00+00:00').revoke.execute(rid)
    # Extended through an approved extension request, then expired.
    rid = ids['extended'] = jit.at('2026-11-20T14:00:00+00:00').file(ALEX, 'prod-db', 'read', 3600, 'INC-7 migration')
    jit.at('2026-11-20T14:01:00+00:00').approve.execute(rid, SAM)
    jit.grant.execute(rid)
    ext = ids['extension'] = jit.at('2026-11-20T14:50:00+00:00').extend.execute(rid, ALEX, 1800, 'INC-7 not done').id
    jit.at('2026-11-20T14:52:00+00:00').approve.execute(ext, SEC)
    jit.grant.execute(ext)
    jit.at('2026-11-20T15:31:00+00:00').revoke.execute(ext)
    jit.revoke.execute(rid)
    # Cancelled while pending.
    rid = ids['cancelled'] = jit.at('2026-11-21T10:00:00+00:00').file(DANA, 'prod-db', 'read', 900, 'INC-8 maybe')
    jit.at('2026-11-21T10:05:00+00:00').end.cancel(rid, DANA)
    # The provider refused: never granted.
    rid = ids['failed'] = jit.at('2026-11-22T10:00:00+00:00').file(DANA, 'prod-db', 'read', 900, 'INC-10 refused')
    jit.at('2026-11-22T10:01:00+00:00').approve.execute(rid, SAM)
    jit.provider.refuse = True
    jit.grant.execute(rid)
    jit.provider.refuse = False
    # Granted on the last evening of November and still active.
    rid = ids['active'] = jit.at('2026-11-30T23:00:00+00:00').file(DANA, 'prod-db', 'read', 7200, 'CHG-11 still going')
    jit.at('2026-11-30T23:01:00+00:00').approve.execute(rid, SAM)
    jit.grant.execute(rid)
    # December.
    rid = ids['december'] = jit.at('2026-12-01T10:00:00+00:00').file(ALEX, 'prod-db', 'read', 1800, 'INC-12 december')
    jit.at('2026-12-01T10:01:00+00:00').approve.execute(rid, SEC)
    jit.grant.execute(rid)
    jit.at('2026-12-01T10:31:00+00:00').revoke.execute(rid)
    return ids
