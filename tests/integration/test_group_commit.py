"""Steps on the audit chain that threads ask for at once are committed together, each exactly as if alone.

Real Redis. A burst of revokes (the revoker's threads), of Slack requests (``jit serve``'s executor) and another
process writing meanwhile: every step applied once, in a chain that verifies, with each refusal its own step's.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from bot.adapters.redis_store import RedisStore
from bot.core import transitions
from bot.core.errors import InvalidTransition
from bot.core.model import GENESIS_HASH, AccessRequest, AuditEvent, Principal, RequestStatus, chain_hash
from bot.deps import SystemClock
from tests.support.redis_server import own_redis_url

pytestmark = pytest.mark.redis
URL = own_redis_url(14)
S = RequestStatus


@pytest.fixture(name='client')
def _client():
    client = redis.Redis.from_url(URL, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()


def _request(n: int) -> AccessRequest:
    who = Principal(slack_id=f'U0{n}')
    return AccessRequest(id=f'r-gc{n:05d}', requester=who, resource='app', role='read', duration=600,
                         reason='INC-1', rule='r', policy_version='v', created_at=time.time())  # fmt: skip


def _created(request: AccessRequest) -> AuditEvent:
    return AuditEvent(event='request.created', actor='x', request=request.summary(), outcome='pending')


def _verify(store: RedisStore) -> list[dict]:
    events = store.audit_events(1, 100_000)
    prev = GENESIS_HASH
    for n, event in enumerate(events, start=1):
        assert event['seq'] == n and event['prev_hash'] == prev and event['hash'] == chain_hash(event, prev)
        prev = event['hash']
    head = store.redis.hgetall(store.prefix + 'audit:head')
    assert int(head['seq']) == len(events) and head['hash'] == prev
    return events


def test_a_burst_of_steps_from_many_threads_is_each_applied_once_on_an_unbroken_chain(client):
    store = RedisStore(client, clock=SystemClock())
    requests = [_request(n) for n in range(300)]
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda r: store.create(r, _created(r)), requests))
        cancelled = list(pool.map(lambda r: store.transition(r.id, lambda x: transitions.cancel(
            x, x.requester, now=time.time()))[0], requests))  # fmt: skip
    assert {r.status for r in cancelled} == {S.CANCELLED}
    events = _verify(store)
    assert len(events) == 600
    per_request = {}
    for event in events:
        per_request.setdefault(event['request']['id'], []).append(event['event'])
    assert len(per_request) == 300
    assert all(v == ['request.created', 'request.cancelled'] for v in per_request.values())
    assert client.zcard(store.prefix + 'pending') == 0


def test_steps_on_the_same_request_in_one_batch_see_each_other_and_a_refusal_is_its_own(client):
    """Ten threads cancel the same request at once: one cancels, nine are told it is already cancelled."""
    store = RedisStore(client, clock=SystemClock())
    request = _request(1)
    store.create(request, _created(request))
    barrier = threading.Barrier(10)

    def cancel(_):
        barrier.wait()
        try:
            store.transition(request.id, lambda x: transitions.cancel(x, x.requester, now=time.time()))
            return 'cancelled'
        except InvalidTransition:
            return 'refused'

    with ThreadPoolExecutor(10) as pool:
        outcomes = list(pool.map(cancel, range(10)))
    assert sorted(outcomes) == ['cancelled'] + ['refused'] * 9
    assert [e['event'] for e in _verify(store)] == ['request.created', 'request.cancelled']


def test_another_process_writing_meanwhile_makes_a_batch_start_again_not_break_the_chain(client):
    """Two stores (two processes' worth of connections) write the same chain at once."""
    one = RedisStore(client, clock=SystemClock())
    two = RedisStore(redis.Redis.from_url(URL, decode_responses=True), clock=SystemClock())
    requests = [_request(n) for n in range(200)]

    def file(args):
        store, request = args
        store.create(request, _created(request))
        store.record(AuditEvent(event='alert.test', actor='x', outcome=request.id))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(file, [((one, two)[n % 2], r) for n, r in enumerate(requests)]))
    events = _verify(one)
    assert len(events) == 400
    assert sorted(e['outcome'] for e in events if e['event'] == 'alert.test') == sorted(r.id for r in requests)


def test_a_request_that_exists_is_not_created_again(client):
    store = RedisStore(client, clock=SystemClock())
    request = _request(7)
    store.create(request, _created(request))
    with pytest.raises(ValueError, match='exists'):
        store.create(request, _created(request))
    assert len(_verify(store)) == 1


def test_redis_away_fails_every_step_of_the_batch_and_the_next_ones_go_on(client):
    store = RedisStore(client, clock=SystemClock())
    real = store._commits._script
    calls = []

    def down_once(**kw):
        calls.append(1)
        if len(calls) == 1:
            raise redis.ConnectionError('Redis restarting')
        return real(**kw)

    store._commits._script = down_once
    with pytest.raises(redis.ConnectionError):
        store.create(_request(1), _created(_request(1)))
    store.create(_request(2), _created(_request(2)))
    assert [e['request']['id'] for e in _verify(store)] == ['r-gc00002']
