"""Before granting, the worker re-checks: the request is what was approved, and the current policy allows it.

Real Redis; the use cases wired by hand with a recording provider and queue (no Slack, no RQ).
"""

from __future__ import annotations

import json

import pytest
import redis

from bot.adapters.redis_store import RedisStore
from bot.core.model import RequestStatus
from bot.core.policy_loader import build_policy
from bot.deps import SystemClock
from bot.usecases.decide_request import ApproveRequest
from bot.usecases.grant_access import GrantAccess
from bot.usecases.submit_request import SubmitRequest
from tests.core.policy_fixtures import ALEX, POLICY_YAML, SAM, SEC
from tests.support.redis_server import own_redis_url

pytestmark = pytest.mark.redis


class Recorder:
    """Provider and queue at once: records what it is asked to do."""

    def __init__(self):
        self.grants, self.calls = [], []

    def grant(self, request, *, settings, params):
        self.grants.append(request.id)
        return {}

    def revoke(self, request, *, settings, params):
        self.calls.append(('revoke', request.id))

    def __getattr__(self, name):  # enqueue_grant, schedule_revoke, enqueue_notify, ...
        return lambda *args, **kwargs: self.calls.append((name, args))


@pytest.fixture(name='wired')
def _wired():
    client = redis.Redis.from_url(own_redis_url(12),
                                  decode_responses=True)  # fmt: skip
    client.flushdb()
    store, rec, clock = RedisStore(client, clock=SystemClock()), Recorder(), SystemClock()
    current = {'policy': build_policy({'p.yaml': POLICY_YAML})}
    policy = lambda: current['policy']  # noqa: E731
    submit = SubmitRequest(store=store, queue=rec, policy=policy, clock=clock)
    approve = ApproveRequest(store=store, queue=rec, policy=policy, clock=clock)
    grant = GrantAccess(store=store, queue=rec, policy=policy, clock=clock, provider=lambda name: rec,
                        on_details=lambda r, d: None)  # fmt: skip
    request = submit.execute(requester=ALEX, resource='prod-db', role='read', duration=600, reason='INC-1')
    approve.execute(request.id, SAM)
    yield store, rec, grant, request.id, current
    client.flushdb()


def test_unchanged_request_is_granted(wired):
    store, rec, grant, request_id, _ = wired
    assert grant.execute(request_id) == 'granted'
    assert rec.grants == [request_id] and store.get(request_id).status is RequestStatus.ACTIVE


def test_request_changed_after_approval_fails_closed(wired):
    """Someone with Redis access turns the approved `read` into `write`: nothing is granted."""
    store, rec, grant, request_id, _ = wired
    key = f'jit:req:{request_id}'
    data = json.loads(store.redis.get(key))
    data['role'] = 'write'
    store.redis.set(key, json.dumps(data))
    assert grant.execute(request_id) == 'failed'
    assert rec.grants == []
    assert store.get(request_id).error == 'the request changed after it was approved'


def test_policy_that_no_longer_allows_it_fails_closed(wired):
    """The policy changed between approval and grant (alex left devops): nothing is granted, and the event says why."""
    store, rec, grant, request_id, current = wired
    current['policy'] = build_policy({'p.yaml': POLICY_YAML.replace('devops: [alex@example.com, ', 'devops: [')})
    assert grant.execute(request_id) == 'failed'
    assert rec.grants == []
    failed = [e for e in store.audit_events() if e['event'] == 'grant.failed']
    assert len(failed) == 1 and 'no longer allows' in failed[0]['error']


def test_break_glass_is_approved_at_once_and_said_loudly():
    """A break_glass rule approves the requester's own request, and records `breakglass.used` for the alarm."""
    client = redis.Redis.from_url(own_redis_url(12),
                                  decode_responses=True)  # fmt: skip
    client.flushdb()
    try:
        store, rec, clock = RedisStore(client, clock=SystemClock()), Recorder(), SystemClock()
        policy = build_policy({'p.yaml': POLICY_YAML})
        submit = SubmitRequest(store=store, queue=rec, policy=lambda: policy, clock=clock)
        request = submit.execute(requester=SEC, resource='prod-db', role='write', duration=600, reason='INC-9 outage')
        assert request.status is RequestStatus.APPROVED
        events = [e['event'] for e in store.audit_events()]
        assert events == ['request.created', 'request.approved', 'breakglass.used']
        alarm = store.audit_events()[-1]
        assert (alarm['actor'], alarm['rule'], alarm['detail']['reason']) == ('U0SEC', 'prod-break-glass',
                                                                             'INC-9 outage')  # fmt: skip
        assert ('enqueue_grant', (request.id,)) in rec.calls
    finally:
        client.flushdb()
