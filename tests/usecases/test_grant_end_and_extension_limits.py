"""What an extension may and may not do, with the real use cases on either store.

- A pending end (release, admin revoke, idle) wins over every later extension: the extension is refused, and
  the due index keeps the earliest end; the revoke record names whoever ended it.
- A grant's total never exceeds its rule's ``timeout``: checked inside the atomic step (eight grantees'
  clicks at once), and again when an approved extension is applied.
- Extension requests count in the per-person limits, like any request.
"""

from __future__ import annotations

import threading
import time

import pytest

from bot.core.errors import InvalidTransition, PolicyDenied, TooManyRequests
from bot.core.model import RequestStatus
from bot.core.policy_loader import build_policy
from bot.deps import SystemClock
from bot.usecases.decide_request import ApproveRequest
from bot.usecases.end_access import EndAccess
from bot.usecases.extend_grant import ExtendGrant
from bot.usecases.grant_access import GrantAccess
from bot.usecases.revoke_access import RevokeAccess
from bot.usecases.submit_request import SubmitRequest, new_request_id
from tests.core.policy_fixtures import ALEX, SAM, SEC
from tests.support.fakes import IgnoringQueue
from tests.support.redis_server import own_redis_url
from tests.support.stores import new_store, overwrite

S = RequestStatus
URL = own_redis_url(16)
POLICY = """
groups:
  devops: [alex@example.com]
  leads: [sam@example.com]
  security: [sec@example.com]
admins: [group:security]
resources:
  app:
    provider: webhook
    roles: [read, write]
requests:
  - name: app-read
    resources: [app]
    roles: [read]
    requesters: [group:devops]
    approvers: [group:leads]
    timeout: 2h
    self_extend: 2h
  - name: app-write
    resources: [app]
    roles: [write]
    requesters: [group:devops]
    approvers: [group:leads]
    timeout: 1h
"""


class Target:
    """A provider that records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def grant(self, request, *, settings, params):
        self.calls.append(('grant', request.id))
        return {}

    def revoke(self, request, *, settings, params):
        self.calls.append(('revoke', request.id))


class Jit:
    def __init__(self, store_kind: str, *, max_open: int = 0, per_hour: int = 0) -> None:
        clock = SystemClock()
        self.store = new_store(store_kind, clock, url=URL)
        self.target = Target()
        policy = build_policy({'p.yaml': POLICY})
        kw = {'store': self.store, 'queue': IgnoringQueue(), 'policy': lambda: policy, 'clock': clock}
        self.submit = SubmitRequest(**kw, max_open=max_open, per_hour=per_hour)
        self.approve = ApproveRequest(**kw)
        self.grant = GrantAccess(**kw, provider=lambda name: self.target, on_details=lambda r, d: None)
        self.revoke = RevokeAccess(**kw, provider=lambda name: self.target, sleep=lambda s: None)
        self.end = EndAccess(**kw)
        self.extend = ExtendGrant(**kw, new_id=new_request_id, max_open=max_open, per_hour=per_hour)

    def active(self, role: str = 'read', duration: int = 600) -> str:
        request = self.submit.execute(requester=ALEX, resource='app', role=role, duration=duration, reason='INC-1')
        self.approve.execute(request.id, SAM)
        assert self.grant.execute(request.id) == 'granted'
        return request.id

    def total(self, request_id: str) -> float:
        grant = self.store.get(request_id)
        return grant.expires_at - grant.granted_at


@pytest.fixture(name='jit')
def _jit(store_kind):
    return Jit(store_kind)


@pytest.mark.parametrize('end', ['admin revoke', 'release'])
def test_a_pending_end_wins_over_a_later_extension(jit, end):
    """The worker is down: sec revokes (or alex releases), then alex extends. The extension is refused, the
    grant stays due now, and when a worker comes the revoke goes through, blamed on whoever ended it."""
    request_id = jit.active()
    if end == 'admin revoke':
        jit.end.revoke(request_id, SEC)
    else:
        jit.end.release(request_id, ALEX)
    due = jit.store.due_at(request_id)
    with pytest.raises(InvalidTransition, match='already ending'):
        jit.extend.execute(request_id, ALEX, 1800)
    assert jit.store.due_at(request_id) == due
    assert jit.revoke.execute(request_id) == 'revoked'
    assert jit.store.get(request_id).status is S.REVOKED
    event = [e for e in jit.store.audit_events() if e['event'] == 'grant.revoked'][-1]
    assert event['actor'] == (SEC.slack_id if end == 'admin revoke' else ALEX.slack_id)
    assert not [e for e in jit.store.audit_events() if e['event'] == 'grant.extended']


def test_an_approved_extension_after_an_admin_revoke_is_refused(jit):
    """An extension request approved after the admin's revoke does not move the end either."""
    request_id = jit.active(role='write', duration=600)
    extension = jit.extend.execute(request_id, ALEX, 600, 'more')
    assert extension.status is S.PENDING
    jit.end.revoke(request_id, SEC)
    jit.approve.execute(extension.id, SAM)
    assert jit.grant.execute(extension.id) == 'failed'
    assert jit.store.due_at(request_id) <= jit.store.get(request_id).expires_at
    assert jit.revoke.execute(request_id) == 'revoked'


def test_a_later_end_never_moves_an_earlier_one_back(jit):
    """Two ends: the earlier time stays in the index, and the first one's author stays on the record."""
    request_id = jit.active()
    jit.end.revoke(request_id, SEC)
    first = jit.store.due_at(request_id)
    with pytest.raises(InvalidTransition, match='already ending'):
        jit.end.release(request_id, ALEX)
    assert jit.store.due_at(request_id) == first
    jit.revoke.execute(request_id)
    assert [e for e in jit.store.audit_events() if e['event'] == 'grant.revoked'][-1]['actor'] == SEC.slack_id


def test_concurrent_self_extensions_never_pass_the_timeout(jit):
    """Eight `/jit extend ID 110m` at once on a 10 minute grant (timeout and self_extend 2h): one is applied,
    the total stays within 7,200 s. Five trials."""
    for _ in range(5):
        request_id = jit.active(duration=600)
        outcomes: list[str] = []
        barrier = threading.Barrier(8)

        def extend(request_id=request_id, outcomes=outcomes, barrier=barrier):
            barrier.wait()
            try:
                jit.extend.execute(request_id, ALEX, 110 * 60)
                outcomes.append('extended')
            except PolicyDenied:
                outcomes.append('refused')

        threads = [threading.Thread(target=extend) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert outcomes.count('extended') == 1, outcomes
        assert jit.total(request_id) <= 7200
        assert jit.store.due_at(request_id) == jit.store.get(request_id).expires_at


def test_approved_extensions_are_checked_again_when_applied(jit):
    """A 30 min grant (timeout 1h, no self_extend) and two 30 min extension requests, both approved: the first is
    applied, the second fails, and the grant's total is 3,600 s, not 5,400 s."""
    request_id = jit.active(role='write', duration=1800)
    first = jit.extend.execute(request_id, ALEX, 1800, 'more')
    second = jit.extend.execute(request_id, ALEX, 1800, 'even more')
    assert first.status is second.status is S.PENDING
    for extension in (first, second):
        jit.approve.execute(extension.id, SAM)
    assert jit.grant.execute(first.id) == 'extended'
    assert jit.grant.execute(second.id) == 'failed'
    assert jit.total(request_id) == 3600
    assert 'longer than rule' in jit.store.get(second.id).error


def test_extension_requests_count_in_the_open_request_limit(store_kind):
    """25 `/jit extend ID 1m` with an open-request limit of 5: five extension requests, then a refusal."""
    jit = Jit(store_kind, max_open=5)
    request_id = jit.active(role='write', duration=600)
    filed, refused = 0, 0
    for _ in range(25):
        try:
            jit.extend.execute(request_id, ALEX, 60, 'a minute')
            filed += 1
        except TooManyRequests:
            refused += 1
    assert (filed, refused) == (5, 20)


def test_extension_requests_count_in_the_hourly_limit(store_kind):
    """Extensions are requests: they take from the same hourly allowance as new requests."""
    jit = Jit(store_kind, per_hour=3)
    request_id = jit.active(role='write', duration=600)  # one of the three
    jit.extend.execute(request_id, ALEX, 60, 'a minute')
    jit.extend.execute(request_id, ALEX, 60, 'a minute')
    with pytest.raises(TooManyRequests, match='in the last hour'):
        jit.extend.execute(request_id, ALEX, 60, 'a minute')


def test_concurrent_requests_never_pass_the_open_request_limit(store_kind):
    """Ten filings at once by one person with a limit of 3: three are filed."""
    jit = Jit(store_kind, max_open=3)
    outcomes: list[str] = []
    barrier = threading.Barrier(10)

    def submit():
        barrier.wait()
        try:
            jit.submit.execute(requester=ALEX, resource='app', role='write', duration=600, reason='x')
            outcomes.append('filed')
        except TooManyRequests:
            outcomes.append('refused')

    threads = [threading.Thread(target=submit) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count('filed') == 3, outcomes


def _applied_extension(jit, extra: int = 600) -> tuple[str, str]:
    grant = jit.active(role='write', duration=600)
    extension = jit.extend.execute(grant, ALEX, extra, 'more')
    jit.approve.execute(extension.id, SAM)
    assert jit.grant.execute(extension.id) == 'extended'
    assert jit.store.get(extension.id).status is S.ACTIVE
    return grant, extension.id


def test_an_applied_extension_cannot_itself_be_extended(jit):
    """An applied extension is an `active` record of its own; extending it (measured from its own start, after an
    admin revoke of the grant) would move nothing jit revokes. It is refused, in the use case and in the step."""
    grant, extension = _applied_extension(jit)
    jit.end.revoke(grant, SEC)
    with pytest.raises(InvalidTransition, match='is an extension of'):
        jit.extend.execute(extension, ALEX, 2)
    from bot.core import transitions

    with pytest.raises(InvalidTransition, match='is an extension of'):
        transitions.extend(jit.store.get(extension), by=2, actor=ALEX, now=0.0, max_total=10**6)
    assert jit.grant.push_expiry(extension) == 'nothing to move'
    assert jit.revoke.execute(grant) == 'revoked' and jit.target.calls[-1] == ('revoke', grant)


@pytest.mark.parametrize('end', ['admin revoke', 'release'])
def test_ending_an_extension_ends_the_grant_it_extends(jit, end):
    """`/jit revoke EXT` (or release) ends the real grant, and the record names who ended it."""
    grant, extension = _applied_extension(jit)
    if end == 'admin revoke':
        jit.end.revoke(extension, SEC)
    else:
        jit.end.release(extension, ALEX)
    assert jit.revoke.execute(grant) == 'revoked'
    assert jit.target.calls[-1] == ('revoke', grant)
    event = [e for e in jit.store.audit_events() if e['event'] == 'grant.revoked'][-1]
    assert event['request']['id'] == grant
    assert event['actor'] == (SEC.slack_id if end == 'admin revoke' else ALEX.slack_id)
    # The extension ends with the grant (due now), not at the grant's former end.
    assert jit.store.due_at(extension) <= time.time()
    assert jit.revoke.execute(extension) == 'revoked' and jit.store.get(extension).status is S.REVOKED


def test_a_grantee_the_policy_no_longer_names_cannot_extend_alone(jit):
    """A pull request removes alex from the rule's requesters: the grant runs its course, but no self-extension."""
    request_id = jit.active(duration=600)
    policy = build_policy({'p.yaml': POLICY.replace('devops: [alex@example.com]', 'devops: [dana@example.com]')})
    jit.extend.policy = lambda: policy
    with pytest.raises(PolicyDenied, match='no longer gives you this access'):
        jit.extend.execute(request_id, ALEX, 60)
    assert jit.total(request_id) == 600


def test_a_request_past_its_pending_timeout_is_not_approved_while_no_sweeper_expired_it(jit):
    """No worker runs, so nobody expired the request: a late click is refused, and a late approval recorded by an
    older jit is refused by the worker's re-check."""
    from dataclasses import replace

    request = jit.submit.execute(requester=ALEX, resource='app', role='write', duration=600, reason='x')
    overwrite(jit.store, replace(jit.store.get(request.id), pending_until=1.0))
    with pytest.raises(InvalidTransition, match='expired undecided'):
        jit.approve.execute(request.id, SAM)
    late = jit.submit.execute(requester=ALEX, resource='app', role='write', duration=600, reason='y')
    jit.approve.execute(late.id, SAM)
    overwrite(jit.store, replace(jit.store.get(late.id), pending_until=1.0))
    assert jit.grant.execute(late.id) == 'failed'
    assert 'expired undecided' in jit.store.get(late.id).error and jit.target.calls == []
