"""A stateful (Hypothesis ``RuleBasedStateMachine``) test of the whole request lifecycle.

It drives the REAL use cases (SubmitRequest, ApproveRequest, DenyRequest, GrantAccess, RevokeAccess,
EndAccess) against a REAL Redis through :class:`~bot.adapters.redis_store.RedisStore`, with:

* a fake clock that only moves when a rule ``tick``\\ s (or when ``RevokeAccess`` "sleeps");
* a fake provider that records every grant/revoke per request and can be switched to fail
  (``down``: nothing happens; ``timeout_after_apply``: the change is made, then the call times out;
  ``permanent``: a permanent refusal);
* a fake queue that RECORDS jobs; rules run the grant jobs, the revoke-now jobs and the revoker (what the
  due index holds as due now: ``workers/revoker.py``), a sweep (expire pending, then revoke what is due at
  ``now - GRACE``), or ``crash`` (every recorded job is lost: the due index must still catch everything).

Each example uses its own key prefix in database 10 of the test process's own Redis and deletes its keys at the end.
"""

from __future__ import annotations

import itertools
import os
import sys
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)  # fmt: skip

from bot.adapters.redis_store import RedisStore
from bot.core.errors import PermanentProviderError, PolicyDenied, RequestError, TransientProviderError
from bot.core.model import GENESIS_HASH, AccessRequest, Principal, RequestStatus, chain_hash
from bot.core.policy_loader import build_policy
from bot.usecases.decide_request import ApproveRequest, DenyRequest
from bot.usecases.end_access import EndAccess
from bot.usecases.grant_access import GrantAccess
from bot.usecases.revoke_access import RevokeAccess
from bot.usecases.submit_request import SubmitRequest
from tests.core.policy_fixtures import ALEX, DANA, EVE, POLICY_YAML, SAM, SEC, SEC2, policy
from tests.support.redis_server import own_redis_url
from workers.revoker import GRACE

pytestmark = pytest.mark.redis

S = RequestStatus
REDIS_URL = own_redis_url(10)
START = 1_700_000_000.0

#: Audit events that are a transition of a request; anything else must be an alert.
TRANSITION_EVENTS = frozenset({
    'request.created', 'request.approved', 'request.denied', 'request.expired', 'request.cancelled',
    'grant.started', 'grant.active', 'grant.failed', 'grant.revoked', 'grant.extended', 'grant.revoke_failed',
})  # fmt: skip
#: A failing clean-up of a half-made grant is shouted without a transition (there is no grant to mark).
ALERT_EVENTS = frozenset({'grant.revoke_failed', 'breakglass.used'})
#: States a request can only be in after it collected its approvals.
APPROVED_OR_LATER = frozenset({S.APPROVED, S.GRANTING, S.ACTIVE, S.REVOKE_FAILED, S.REVOKED})
NEVER_GRANTED = frozenset({S.DENIED, S.CANCELLED, S.EXPIRED})

PEOPLE = [ALEX, DANA, SAM, EVE, SEC, SEC2]
STRANGER = Principal(slack_id='U0MALLORY', email='mallory@example.com')
#: Requests the fixture policy files: prod-read (ALEX, DANA), demo-all (ALEX, EVE), demo-self (SAM, auto),
#: prod-write (DANA: step 2 needs two distinct security people, and there is only one), break-glass (SEC).
VALID_REQUESTS = [
    (ALEX, 'prod-db', 'read', None, 'INC-42 the orders table'),
    (DANA, 'prod-db', 'read', 900, 'CHG-7 migration'),
    (ALEX, 'demo', None, 300, 'demo'),
    (EVE, 'demo', None, 1800, 'demo'),
    (SAM, 'demo', None, 600, ''),
    (DANA, 'prod-db', 'write', 1800, 'hotfix'),
    (SEC, 'prod-db', 'write', 900, 'INC-9 outage'),
]
ANY_REQUEST = st.tuples(
    st.sampled_from([ALEX, DANA, SAM, EVE, SEC]),
    st.sampled_from(['prod-db', 'demo']),
    st.sampled_from(['read', 'write', None]),
    st.sampled_from([None, 300, 900, 1800, 4 * 3600]),
    st.sampled_from(['INC-42 the orders table', 'curious', '']),
)
#: The fixture policy with a ``pending_timeout`` on two rules, so that ``expire_pending`` has work.
PENDING_TIMEOUT_YAML = POLICY_YAML.replace(
    '    timeout: 2 hours\n', '    timeout: 2 hours\n    pending_timeout: 15m\n'
).replace('    timeout: 4h\n', '    timeout: 4h\n    pending_timeout: 1h\n')


def _client() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL, decode_responses=True)


def _redis_available() -> bool:
    try:
        return bool(_client().ping())
    except redis.RedisError:
        return False


# -- fakes -------------------------------------------------------------------------------------------


class FakeClock:
    """``now()`` is whatever the test says; ``sleep`` moves it on instead of waiting."""

    def __init__(self, t: float = START) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        assert seconds >= 0, f'time must not go backwards ({seconds})'
        self.t += seconds


class FakeProvider:
    """Records every call per request ID; ``mode`` decides whether the next calls fail.

    ``log[id]`` holds, in order: ``grant`` (applied), ``grant_failed`` (nothing applied),
    ``grant_applied_then_failed`` (applied, then the call timed out), and the same for ``revoke``.
    """

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.mode = 'ok'
        self.log: dict[str, list[str]] = defaultdict(list)
        self.live: set[str] = set()
        self.problems: list[str] = []

    def grant(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        stored = self.store.get(request.id)
        # The revoke must be impossible to lose *before* anything is granted.
        if stored is None or stored.status is not S.GRANTING or self.store.due_at(request.id) is None:
            self.problems.append(f'grant of {request.id} while it is {stored and stored.status}, '
                                 f'due_at={self.store.due_at(request.id)}')  # fmt: skip
        if self.mode in ('down', 'permanent'):
            self.log[request.id].append('grant_failed')
            if self.mode == 'permanent':
                raise PermanentProviderError('refused')
            raise TransientProviderError('provider down')
        self.live.add(request.id)
        if self.mode == 'timeout_after_apply':
            self.log[request.id].append('grant_applied_then_failed')
            raise TransientProviderError('timed out (after applying)')
        self.log[request.id].append('grant')
        return {}

    def revoke(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> None:
        if self.mode in ('down', 'permanent'):
            self.log[request.id].append('revoke_failed')
            if self.mode == 'permanent':
                raise PermanentProviderError('refused')
            raise TransientProviderError('provider down')
        self.live.discard(request.id)
        if self.mode == 'timeout_after_apply':
            self.log[request.id].append('revoke_applied_then_failed')
            raise TransientProviderError('timed out (after applying)')
        self.log[request.id].append('revoke')


class FakeQueue:
    """A ``JobQueue`` that records the jobs instead of running them."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.grants: list[tuple[str, float]] = []  # (request id, not before)
        self.revoke_now: list[str] = []

    def enqueue_grant(self, request_id: str, *, delay: float = 0, attempt: int = 0) -> None:
        self.grants.append((request_id, self.clock.now() + delay))

    def enqueue_push_expiry(self, request_id: str, *, delay: float = 0, attempt: int = 0) -> None:
        """Providers of this machine keep no expiry of their own."""

    def enqueue_revoke_now(self, request_id: str) -> None:
        self.revoke_now.append(request_id)

    def lose_everything(self) -> None:
        self.grants.clear()
        self.revoke_now.clear()


@dataclass
class Tracked:
    """What the test knows about one request: the transitions it went through, in order."""

    id: str
    requester: Principal
    status: RequestStatus
    trail: list[tuple[str, str]] = field(default_factory=list)  # (event, outcome)
    released_at: float | None = None  # first release / admin revoke
    postponed_to: float | None = None  # due score set by the last failed revoke (backoff)


# -- the machine -------------------------------------------------------------------------------------


class LifecycleMachine(RuleBasedStateMachine):
    """Requests, approvals, grants, revokes, releases, crashes and time, against real Redis."""

    build_policy = staticmethod(policy)
    #: When False, release/admin revoke is only tried on grants that have not expired yet. The machine
    #: tests keep it False because releasing an already-expired grant postpones its revoke (a known bug,
    #: see ``test_release_after_expiry_does_not_postpone_the_revoke``).
    release_after_expiry = False

    requests = Bundle('requests')

    def __init__(self) -> None:
        super().__init__()
        self.r = _client()
        self.prefix = f'jit-stateful:{uuid.uuid4().hex[:12]}:'
        self.clock = FakeClock()
        self.store = RedisStore(self.r, clock=self.clock, prefix=self.prefix)
        self.queue = FakeQueue(self.clock)
        self.provider = FakeProvider(self.store)
        current = self.build_policy()
        self.policy = current
        get_policy = lambda: current  # noqa: E731
        counter = itertools.count(1)
        self.next_id = lambda: f'r-{next(counter):04d}'
        self.last_id: str | None = None

        def new_id() -> str:
            self.last_id = self.next_id()
            return self.last_id

        kw: dict[str, Any] = {'store': self.store, 'queue': self.queue, 'policy': get_policy}
        self.submit = SubmitRequest(**kw, clock=self.clock, new_id=new_id)
        self.approve_uc = ApproveRequest(**kw, clock=self.clock)
        self.deny_uc = DenyRequest(**kw)
        self.end = EndAccess(**kw, clock=self.clock)
        self.grant = GrantAccess(**kw, clock=self.clock, provider=lambda name: self.provider,
                                 on_details=lambda request, details: None)  # fmt: skip
        self.revoke = RevokeAccess(**kw, clock=self.clock, provider=lambda name: self.provider,
                                   sleep=self.clock.advance)  # fmt: skip
        self.tracked: dict[str, Tracked] = {}
        self.verified_seq = 0
        self.verified_hash = GENESIS_HASH
        self.audit_by_request: dict[str, list[tuple[str, str]]] = defaultdict(list)

    # -- helpers -------------------------------------------------------------------------------

    def _head_seq(self) -> int:
        return int(self.r.hget(self.prefix + 'audit:head', 'seq') or 0)

    def _grant_job(self, rid: str) -> None:
        """Run one grant job and note the transitions it should have made."""
        before = self.store.get(rid)
        assert before is not None
        n = len(self.provider.log[rid])
        jobs_before = len(self.queue.grants)
        self.grant.execute(rid)
        after = self.store.get(rid)
        assert after is not None
        calls = [c for c in self.provider.log[rid][n:] if c.startswith('grant')]
        expected: list[tuple[str, str]] = []
        if before.status not in (S.APPROVED, S.GRANTING):
            assert not calls, f'{rid}: granted while {before.status}'
            assert after.status is before.status
        elif not calls:  # the re-check refused it
            expected = [('grant.failed', 'failed')]
            assert after.status is S.FAILED
        else:
            assert len(calls) == 1, calls
            expected = [('grant.started', 'granting')]
            if calls[0] == 'grant':
                expected.append(('grant.active', 'active'))
                assert after.status is S.ACTIVE
                assert after.expires_at == after.granted_at + after.duration
                assert self.store.due_at(rid) == after.expires_at, 'the due index does not end it at expires_at'
            elif after.status is S.FAILED:
                expected.append(('grant.failed', 'failed'))
            else:
                assert after.status is S.GRANTING
                assert any(j[0] == rid for j in self.queue.grants[jobs_before:]), 'a retry must be queued'
        self.tracked[rid].trail.extend(expected)
        self.tracked[rid].status = after.status

    def _revoke_job(self, rid: str, *, early_ok: bool = False) -> None:
        """Run RevokeAccess for one request and note the transitions it should have made."""
        before = self.store.get(rid)
        n = len(self.provider.log[rid])
        self.revoke.execute(rid, early_ok=early_ok)
        after = self.store.get(rid)
        if before is None or rid not in self.tracked:
            return
        assert after is not None
        calls = [c for c in self.provider.log[rid][n:] if c.startswith('revoke')]
        expected: list[tuple[str, str]] = []
        if calls == ['revoke']:
            if before.status in (S.ACTIVE, S.REVOKE_FAILED):
                expected = [('grant.revoked', 'revoked')]
                assert after.status is S.REVOKED
            elif before.status is S.GRANTING:
                expected = [('grant.failed', 'failed')]
                assert after.status is S.FAILED
            else:
                assert after.status is before.status
        else:
            assert len(calls) <= 1, calls
            if before.status is S.ACTIVE and after.status is S.REVOKE_FAILED:
                assert calls and self.store.redis.get(f'{self.prefix}revoke_failures:{rid}') is not None
                expected = [('grant.revoke_failed', 'revoke_failed')]
            else:
                assert after.status is before.status, f'{rid}: {before.status} -> {after.status} without a revoke'
            if calls:
                self.tracked[rid].postponed_to = self.store.due_at(rid)
        self.tracked[rid].trail.extend(expected)
        self.tracked[rid].status = after.status

    def _decide(self, rid: str, action: Any, event: str) -> None:
        """Run an approve/deny/cancel; a refusal must change nothing at all."""
        before = self.store.get(rid)
        assert before is not None
        seq = self._head_seq()
        jobs = len(self.queue.grants)
        try:
            after = action()
        except RequestError:
            assert self.store.get(rid) == before, 'a refused decision changed the request'
            assert self._head_seq() == seq, 'a refused decision wrote an audit event'
            assert len(self.queue.grants) == jobs
            return
        outcome = str(after.status)
        self.tracked[rid].trail.append((event, outcome))
        self.tracked[rid].status = after.status
        if event == 'request.approved' and after.status is S.APPROVED:
            assert self.queue.grants[jobs:] == [(rid, self.clock.now())], 'approval must queue one grant'

    def _sweep(self) -> bool:
        """``Sweeper.sweep_once``; returns whether the provider worked throughout."""
        provider_ok = self.provider.mode == 'ok'
        now = self.clock.now()
        expiring = {t.id for t in self.tracked.values() if t.status is S.PENDING
                    and (self.store.get(t.id).pending_until or float('inf')) <= now}  # fmt: skip
        self.end.expire_pending()
        for rid in expiring:
            assert self.store.get(rid).status is S.EXPIRED, f'{rid} should have expired'
            self.tracked[rid].trail.append(('request.expired', 'expired'))
            self.tracked[rid].status = S.EXPIRED
        for rid in self.store.stalled_grants(self.clock.now()):
            before = self.store.get(rid)
            outcome = self.grant.recover(rid)
            if outcome == 'failed':
                assert before.status in (S.APPROVED, S.GRANTING), f'{rid} failed from {before.status}'
                self.tracked[rid].trail.append(('grant.failed', 'failed'))
                self.tracked[rid].status = S.FAILED
            elif outcome == 'requeued':
                assert self.queue.grants[-1][0] == rid, 'a stalled grant must be queued again'
        for rid in self.store.due_for_revoke(self.clock.now() - GRACE):
            self._revoke_job(rid)
        return provider_ok

    def _check_after_sweep(self) -> None:
        """Invariant 3: after a sweep with a working provider, nothing overdue is still granted."""
        limit = self.clock.now() - GRACE
        for t in self.tracked.values():
            req = self.store.get(t.id)
            assert req is not None
            due = self.store.due_at(t.id)
            backoff = t.postponed_to is not None and due == t.postponed_to and due > limit
            if req.status is S.ACTIVE and not backoff:
                assert req.expires_at is not None
                assert req.expires_at >= limit, (
                    f'{t.id} is still active {limit - req.expires_at:.1f}s past expires_at - GRACE after a sweep '
                    f'(due index score {due}, expires_at {req.expires_at}, now {self.clock.now()})')  # fmt: skip
                if t.released_at is not None:
                    assert t.released_at >= limit, (
                        f'{t.id} was released at {t.released_at} and is still active after a sweep at '
                        f'{self.clock.now()} (due index score {due})')  # fmt: skip
            if req.status is S.GRANTING and not backoff:
                assert req.grant_deadline is not None and req.grant_deadline >= limit, f'{t.id} granting too long'
            if due is not None and not backoff:
                assert due > limit, f'{t.id} is still due ({due}) after a sweep at {self.clock.now()}'

    # -- rules ---------------------------------------------------------------------------------

    @initialize(target=requests, spec=st.sampled_from(VALID_REQUESTS))
    def first_request(self, spec: tuple[Principal, str, str | None, int | None, str]):
        """Every run starts with one request the policy accepts."""
        return self._file(*spec)

    @rule(target=requests, spec=st.sampled_from(VALID_REQUESTS) | st.sampled_from(VALID_REQUESTS) | ANY_REQUEST)
    def request(self, spec: tuple[Principal, str, str | None, int | None, str]):
        """Someone files a request (often one the policy accepts, otherwise anything)."""
        return self._file(*spec)

    def _file(self, who: Principal, resource: str, role: str | None, duration: int | None, reason: str):
        """File; when the policy refuses, nothing is stored and nothing is audited."""
        seq = self._head_seq()
        self.last_id = None
        try:
            req = self.submit.execute(requester=who, resource=resource, role=role, duration=duration,
                                      reason=reason)  # fmt: skip
        except PolicyDenied:
            assert self.last_id is None or self.store.get(self.last_id) is None
            assert self._head_seq() == seq
            return multiple()
        t = Tracked(req.id, who, req.status, [('request.created', 'pending')])
        if req.status is S.APPROVED:
            t.trail.append(('request.approved', 'approved'))
        self.tracked[req.id] = t
        return req.id

    @rule(rid=requests, data=st.data())
    def approve_as_approver(self, rid: str, data: st.DataObject) -> None:
        """Someone the current step names clicks Approve (maybe the requester, maybe twice)."""
        req = self.store.get(rid)
        rule_ = self.policy.rule_named(req.rule)
        allowed = self.policy.step_approvers(rule_, req.step)
        who = data.draw(st.sampled_from([p for p in PEOPLE if p.ids() & allowed] or PEOPLE))
        self._decide(rid, lambda: self.approve_uc.execute(rid, who), 'request.approved')

    @rule(rid=requests, who=st.sampled_from([*PEOPLE, STRANGER]))
    def approve(self, rid: str, who: Principal) -> None:
        """Anyone clicks Approve: the requester, approvers, the same person twice, strangers."""
        self._decide(rid, lambda: self.approve_uc.execute(rid, who), 'request.approved')

    @rule(rid=requests, who=st.sampled_from([*PEOPLE, STRANGER]), reason=st.sampled_from(['', 'no']))
    def deny(self, rid: str, who: Principal, reason: str) -> None:
        """Anyone clicks Deny."""
        self._decide(rid, lambda: self.deny_uc.execute(rid, who, reason), 'request.denied')

    @rule(rid=requests, requester=st.booleans(), who=st.sampled_from(PEOPLE))
    def cancel(self, rid: str, requester: bool, who: Principal) -> None:
        """The requester (or someone else, refused) cancels."""
        actor = self.tracked[rid].requester if requester else who
        self._decide(rid, lambda: self.end.cancel(rid, actor), 'request.cancelled')

    def _end(self, rid: str, action: Any) -> None:
        req = self.store.get(rid)
        if not self.release_after_expiry and req.expires_at is not None and req.expires_at < self.clock.now():
            return
        seq = self._head_seq()
        try:
            action()
        except RequestError:
            return
        finally:
            assert self._head_seq() == seq, 'release/admin revoke must not write a transition itself'
        t = self.tracked[rid]
        if t.released_at is None:
            t.released_at = self.clock.now()

    @rule(rid=requests, grantee=st.booleans(), who=st.sampled_from(PEOPLE))
    def release(self, rid: str, grantee: bool, who: Principal) -> None:
        """The grantee (or someone else, refused) releases the grant."""
        actor = self.tracked[rid].requester if grantee else who
        self._end(rid, lambda: self.end.release(rid, actor))

    @rule(rid=requests, who=st.sampled_from([SEC, SEC2, SAM, ALEX]))
    def admin_revoke(self, rid: str, who: Principal) -> None:
        """An admin (SEC, also as SEC2) revokes; non-admins are refused."""
        self._end(rid, lambda: self.end.revoke(rid, who))

    @rule(seconds=st.sampled_from([0.5, 1, 2, 5, 30, 61, 300, 600, 1800, 3600, 4 * 3600]) | st.floats(0, 7200))
    def tick(self, seconds: float) -> None:
        """Time passes."""
        self.clock.advance(seconds)

    @rule(mode=st.sampled_from(['ok', 'ok', 'down', 'timeout_after_apply', 'permanent']))
    def provider_mode(self, mode: str) -> None:
        """The provider works, is down, times out after applying, or refuses."""
        self.provider.mode = mode

    @precondition(lambda self: any(j[1] <= self.clock.now() for j in self.queue.grants))
    @rule()
    def run_grant_jobs(self) -> None:
        """A worker runs every grant job whose time has come (retries wait for their delay)."""
        now = self.clock.now()
        ready = [j for j in self.queue.grants if j[1] <= now]
        self.queue.grants = [j for j in self.queue.grants if j[1] > now]
        for rid, _ in ready:
            self._grant_job(rid)

    @precondition(lambda self: self.queue.revoke_now or self.store.due_for_revoke(self.clock.now()))
    @rule()
    def run_due_revokes(self) -> None:
        """A worker runs the revoke-now jobs, and its revoker the grants whose time has come (``grants:due``)."""
        now_jobs, self.queue.revoke_now = self.queue.revoke_now, []
        for rid in now_jobs:
            self._revoke_job(rid)
        for rid in self.store.due_for_revoke(self.clock.now()):
            self._revoke_job(rid)

    @rule()
    def sweep(self) -> None:
        """The sweeper runs once; with a working provider nothing overdue may remain (invariant 3)."""
        if self._sweep():
            self._check_after_sweep()

    @precondition(lambda self: self.queue.grants or self.queue.revoke_now)
    @rule()
    def crash(self) -> None:
        """A worker died and the queue was lost: every recorded job is gone."""
        self.queue.lose_everything()

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def approvals_are_distinct_and_enough(self) -> None:
        """Invariant 1: nothing is approved or later without enough distinct approvals, none by the requester."""
        for req in self.store.get_many(list(self.tracked)):
            rule_ = self.policy.rule_named(req.rule)
            assert rule_ is not None
            for a in req.approvals:
                assert not a.by.same_as(req.requester), f'{req.id}: approved by its requester {a.by}'
            if req.status not in APPROVED_OR_LATER and not (req.status is S.FAILED and req.approved_digest):
                continue
            if rule_.auto_approve or rule_.break_glass:
                continue
            for i, step in enumerate(rule_.steps):
                mine = [a.by for a in req.approvals if a.step == i]
                for x, y in itertools.combinations(mine, 2):
                    assert not x.same_as(y), f'{req.id}: {x} and {y} are the same person'
                allowed = self.policy.step_approvers(rule_, i)
                assert all(p.ids() & allowed for p in mine), f'{req.id}: an approver of step {i} is not allowed'
                assert len(mine) >= step.approvals, f'{req.id} is {req.status} with {len(mine)} of {step.approvals}'

    @invariant()
    def audit_trail_matches_transitions(self) -> None:
        """Invariant 2: one audit event per transition, in order, on an unbroken hash chain."""
        new = self.store.audit_events(self.verified_seq + 1, 100_000)
        for record in new:
            assert record['seq'] == self.verified_seq + 1, f'gap in the audit stream at {record["seq"]}'
            assert record['prev_hash'] == self.verified_hash, f'broken chain at seq {record["seq"]}'
            assert record['hash'] == chain_hash(record, self.verified_hash), f'bad hash at seq {record["seq"]}'
            self.verified_seq, self.verified_hash = record['seq'], record['hash']
            rid = (record.get('request') or {}).get('id')
            if record['event'] in TRANSITION_EVENTS and record.get('outcome') != 'retrying':  # not an alert
                self.audit_by_request[rid].append((record['event'], record['outcome']))
            else:
                assert record['event'] in ALERT_EVENTS, record
        head = self.r.hgetall(self.prefix + 'audit:head')
        assert int(head.get('seq', 0)) == self.verified_seq and head.get('hash', GENESIS_HASH) == self.verified_hash
        assert set(self.audit_by_request) <= set(self.tracked), 'audit events for unknown requests'
        for rid, t in self.tracked.items():
            assert self.audit_by_request[rid] == t.trail, f'{rid}: audit {self.audit_by_request[rid]} != {t.trail}'
            assert self.store.get(rid).status is t.status, f'{rid}: store {self.store.get(rid).status} != {t.status}'

    @invariant()
    def revokes_cannot_be_lost(self) -> None:
        """Invariant 3 (always): nothing revoked is live; whatever is live at the provider is due for a revoke."""
        for rid in self.provider.live:
            req = self.store.get(rid)
            assert req is not None
            assert req.status is not S.REVOKED, f'{rid} is revoked but still live at the provider'
            assert self.store.due_at(rid) is not None, f'{rid} ({req.status}) is live but nothing will revoke it'
        for req in self.store.get_many(list(self.tracked)):
            if req.status in (S.ACTIVE, S.REVOKE_FAILED, S.GRANTING):
                assert self.store.due_at(req.id) is not None, f'{req.id} is {req.status} but not in grants:due'

    @invariant()
    def provider_grants_once(self) -> None:
        """Invariant 4: no second grant without a failure in between; denied/cancelled/expired never granted."""
        assert not self.provider.problems, self.provider.problems
        for rid, calls in self.provider.log.items():
            grants = [c for c in calls if c.startswith('grant')]
            for prev, nxt in itertools.pairwise(grants):
                if nxt != 'grant_failed':
                    assert prev != 'grant', f'{rid}: granted twice without a failure in between: {calls}'
            if self.tracked[rid].status in NEVER_GRANTED:
                assert not grants, f'{rid} is {self.tracked[rid].status} but the provider was asked to grant'

    # -- the end -------------------------------------------------------------------------------

    def teardown(self) -> None:
        """Invariant 5: far in the future, with a working provider, the sweeper leaves nothing live."""
        try:
            if sys.exc_info()[1] is None:  # a step already failed: report that, not this
                self.provider.mode = 'ok'
                for _ in range(4):
                    self.clock.advance(30 * 86400)
                    self._sweep()
                    self._check_after_sweep()
                assert not self.provider.live, f'still live at the provider: {sorted(self.provider.live)}'
                assert self.store.due_for_revoke(float('inf')) == [], 'grants:due not drained'
                for req in self.store.get_many(list(self.tracked)):
                    assert req.status not in (S.APPROVED, S.ACTIVE, S.REVOKE_FAILED, S.GRANTING), (
                        f'{req.id} is still {req.status}')  # fmt: skip
                self.audit_trail_matches_transitions()
                self.provider_grants_once()
        finally:
            keys = list(self.r.scan_iter(match=self.prefix + '*', count=1000))
            if keys:
                self.r.delete(*keys)


SETTINGS = settings(
    max_examples=int(os.environ.get('JIT_STATEFUL_EXAMPLES', '60')),
    stateful_step_count=30,
    deadline=None,
    database=None,  # nothing written outside the test tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

needs_redis = pytest.mark.skipif(not _redis_available(), reason=f'no Redis at {REDIS_URL}')


class PendingTimeoutMachine(LifecycleMachine):
    """The same machine over the fixture policy with ``pending_timeout`` on two rules, so requests expire."""

    build_policy = staticmethod(lambda: build_policy({'policies/main.yaml': PENDING_TIMEOUT_YAML}))


@needs_redis
def test_lifecycle_machine() -> None:
    """The real use cases over real Redis keep invariants 1-5 under any interleaving of the rules."""
    LifecycleMachine.TestCase.settings = SETTINGS
    LifecycleMachine.TestCase().runTest()


@needs_redis
def test_lifecycle_machine_with_pending_timeouts() -> None:
    """As above, with undecided requests expiring (``pending_timeout``), which the sweeper carries out."""
    PendingTimeoutMachine.TestCase.settings = SETTINGS
    PendingTimeoutMachine.TestCase().runTest()


@needs_redis
def test_release_after_expiry_does_not_postpone_the_revoke() -> None:
    """Invariant 3, minimal sequence: an expired grant released before the sweeper ran is still revoked by it.

    request (SAM, demo, 600 s, auto-approved) -> run_grant_jobs -> tick(700) -> release (by SAM) -> sweep.
    The grant expired 100 s ago, the grantee pressed Release, then the sweeper ran (the revoke-now job was
    lost or not run yet): the grant must not still be active, but ``mark_end`` moved its due score from
    ``expires_at`` to ``now``, past the sweeper's ``now - GRACE``.
    """
    machine = LifecycleMachine()
    machine.release_after_expiry = True
    try:
        rid = machine._file(SAM, 'demo', None, 600, '')
        machine.run_grant_jobs()
        machine.tick(700)
        machine.release(rid, True, SAM)
        machine.sweep()  # raises: r-0001 is still active 99.0s past expires_at - GRACE after a sweep
    finally:
        keys = list(machine.r.scan_iter(match=machine.prefix + '*', count=1000))
        if keys:
            machine.r.delete(*keys)
