"""The expiry a target is told is the end the grant really has, within ``ACTIVATION_SLACK`` of it.

Real Redis, the real ``webhook`` provider posting to the real demo receiver (``bot.sandbox.webhook_target``), the
use cases wired by hand. A receiver that enforces the ``expires_at`` it is sent must keep access no longer than
jit does (plus the stated slack), and not end it much earlier either: a grant confirmed late is corrected.
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest
import redis

from bot.adapters.redis_store import RedisStore
from bot.core.policy_loader import build_policy
from bot.core.ports import ACTIVATION_SLACK
from bot.sandbox.webhook_target import WebhookTarget
from bot.usecases.decide_request import ApproveRequest
from bot.usecases.grant_access import GRANT_LEASE, GRANT_RETRY_WINDOW, GrantAccess
from bot.usecases.submit_request import SubmitRequest
from tests.core.policy_fixtures import ALEX, SAM
from tests.integration.test_grant_recheck import Recorder
from tests.support.redis_server import own_redis_url
from workers.providers.webhook import WebhookProvider

pytestmark = pytest.mark.redis

POLICY = """
groups: {leads: [sam@example.com]}
resources:
  app:
    provider: webhook
    settings: {url: "URL", secret: s3cret}
    roles: [read]
requests:
  - name: app-read
    resources: [app]
    requesters: [alex@example.com]
    approvers: [group:leads]
    timeout: 1h
"""


class ShiftedClock:
    """The real time plus an offset the test moves: a confirmation that takes a minute, without waiting one."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


def _told(body) -> float:
    return datetime.fromisoformat(body['expires_at'].replace('Z', '+00:00')).timestamp()


@pytest.fixture(name='rig')
def _rig():
    client = redis.Redis.from_url(own_redis_url(15), decode_responses=True)
    client.flushdb()
    target = WebhookTarget('s3cret')
    url = target.start_in_thread()
    clock, queue = ShiftedClock(), Recorder()
    store = RedisStore(client, clock=clock)
    policy = build_policy({'p.yaml': POLICY.replace('URL', url)})
    kw = {'store': store, 'queue': queue, 'policy': lambda: policy, 'clock': clock}
    provider = WebhookProvider()
    confirm = {'delay': 0.0}

    def on_details(request, details):  # runs between the provider's answer and `active`
        clock.offset += confirm['delay']

    grant = GrantAccess(**kw, provider=lambda name: provider, on_details=on_details)
    request = SubmitRequest(**kw).execute(requester=ALEX, resource='app', role='read', duration=900, reason='INC-1')
    ApproveRequest(**kw).execute(request.id, SAM)
    target.details = {'note': 'granted'}  # so that on_details runs
    yield store, target, grant, queue, confirm, request.id
    target.stop_thread()
    client.flushdb()


def test_the_first_grant_call_tells_the_end_the_grant_will_have(rig):
    """Not the end of the grant's retry window (approval + 5 minutes + the duration): now + duration, within the
    stated slack of the ``expires_at`` jit records, and never before it."""
    store, target, grant, queue, _, request_id = rig
    assert grant.execute(request_id) == 'granted'
    active = store.get(request_id)
    [call] = target.grants_for(request_id)
    told = _told(call.body)
    assert active.expires_at - 1 <= told <= active.expires_at + ACTIVATION_SLACK, told - active.expires_at
    assert active.grant_deadline - told >= GRANT_RETRY_WINDOW + GRANT_LEASE - ACTIVATION_SLACK - 1, 'not its deadline'
    assert target.active[request_id]['expires_at'] == call.body['expires_at']
    assert not [c for c in queue.calls if c[0] == 'enqueue_push_expiry'], 'confirmed in time: one call'


def test_a_grant_confirmed_late_has_its_expiry_at_the_target_corrected(rig):
    """Confirmed a minute after the call (more than the slack): the end jit records is later than the one the
    target was told, so a second call (the extension's push path) moves the target's expiry to it."""
    store, target, grant, queue, confirm, request_id = rig
    confirm['delay'] = 60.0
    assert grant.execute(request_id) == 'granted'
    active = store.get(request_id)
    first = _told(target.grants_for(request_id)[0].body)
    assert first < active.expires_at - ACTIVATION_SLACK, 'the target was told an end well before jit ends it'
    assert ('enqueue_push_expiry', (request_id,)) in queue.calls
    assert grant.push_expiry(request_id) == 'moved'
    calls = target.grants_for(request_id)
    assert len(calls) == 2 and all(c.ok for c in calls)
    told = _told(target.active[request_id])  # what the receiver holds now: the second call's
    assert told == _told(calls[-1].body)
    assert active.expires_at - 1 <= told <= active.expires_at + ACTIVATION_SLACK, told - active.expires_at
