"""A grant is never lost either: the sweeper's check on approved requests that did not become active.

Real Redis, a clock the test moves, the use cases wired by hand. The chaos suite shows the same with
real worker processes killed mid-call (``tests/chaos/test_worker_kill.py``); here each branch of
``GrantAccess.recover`` is pinned down, and the leases it relies on.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis

from bot.adapters.redis_store import WATCH_AFTER, RedisStore
from bot.core import transitions
from bot.core.model import RequestStatus
from bot.core.policy_loader import build_policy
from bot.usecases.decide_request import ApproveRequest
from bot.usecases.grant_access import GRANT_LEASE, GRANT_RETRY_WINDOW, GrantAccess
from bot.usecases.lease import held_lease
from bot.usecases.revoke_access import RevokeAccess
from bot.usecases.submit_request import SubmitRequest
from tests.core.policy_fixtures import ALEX, POLICY_YAML, SAM
from tests.integration.test_grant_recheck import Recorder
from tests.support.fakes import MovableClock
from tests.support.redis_server import own_redis_url

pytestmark = pytest.mark.redis
S = RequestStatus
URL = own_redis_url(12)


@pytest.fixture(name='jit')
def _jit():
    client = redis.Redis.from_url(URL, decode_responses=True)
    client.flushdb()
    clock, rec = MovableClock(), Recorder()
    store = RedisStore(client, clock=clock)
    policy = lambda: build_policy({'p.yaml': POLICY_YAML})  # noqa: E731
    kw = {'store': store, 'queue': rec, 'policy': policy, 'clock': clock}
    grant = GrantAccess(**kw, provider=lambda name: rec, on_details=lambda r, d: None)
    revoke = RevokeAccess(**kw, provider=lambda name: rec, sleep=lambda s: None)
    request = SubmitRequest(**kw).execute(requester=ALEX, resource='prod-db', role='read', duration=600, reason='INC-1')
    ApproveRequest(**kw).execute(request.id, SAM)
    rec.calls.clear()
    yield store, clock, rec, grant, revoke, request.id
    client.flushdb()


def _requeued(rec: Recorder) -> list[tuple]:
    return [args for name, args in rec.calls if name == 'enqueue_grant']


def test_a_lost_grant_job_is_queued_again(jit):
    """The approval's grant job vanished: after WATCH_AFTER the sweeper queues it again, and it grants."""
    store, clock, rec, grant, _, request_id = jit
    assert store.stalled_grants(clock.now()) == []
    clock.t += WATCH_AFTER + 1
    assert store.stalled_grants(clock.now()) == [request_id]
    assert grant.recover(request_id) == 'requeued'
    assert _requeued(rec) == [(request_id,)]
    assert store.stalled_grants(clock.now()) == [], 'queued again once, not on every sweep'
    assert grant.execute(request_id) == 'granted'
    assert store.get(request_id).status is S.ACTIVE
    clock.t += 3600
    assert store.stalled_grants(clock.now()) == [], 'an active grant is no longer watched'


def test_an_approved_request_never_granted_fails_closed_after_the_window(jit):
    """Nothing could run the grant for the whole retry window: the request fails and the requester is told."""
    store, clock, rec, grant, _, request_id = jit
    clock.t += GRANT_RETRY_WINDOW + 1
    assert grant.recover(request_id) == 'failed'
    request = store.get(request_id)
    assert request.status is S.FAILED and request.error == 'the grant did not finish in time'
    assert [e['event'] for e in store.audit_events()][-1] == 'grant.failed'
    assert rec.grants == [] and store.due_at(request_id) is None, 'nothing reached the provider: nothing to undo'
    assert grant.execute(request_id).startswith('skipped'), 'a late job grants nothing'


def _killed_mid_grant(store: RedisStore, clock: MovableClock, request_id: str) -> None:
    """What a worker SIGKILLed inside the provider call leaves: `granting`, watched, its lease lapsing."""
    store.transition(request_id, lambda r: transitions.start_grant(
        r, now=clock.now(), deadline=clock.now() + GRANT_RETRY_WINDOW + GRANT_LEASE + r.duration))  # fmt: skip
    store.watch(request_id, clock.now() + GRANT_LEASE)


def test_a_grant_whose_worker_died_is_retried_idempotently(jit):
    store, clock, _, grant, _, request_id = jit
    _killed_mid_grant(store, clock, request_id)
    clock.t += GRANT_LEASE + 1
    assert store.stalled_grants(clock.now()) == [request_id]
    assert grant.recover(request_id) == 'requeued'
    assert grant.execute(request_id) == 'granted'
    request = store.get(request_id)
    assert request.status is S.ACTIVE and request.attempts == 2
    assert store.due_at(request_id) == request.expires_at


def test_recovery_leaves_a_live_attempt_alone(jit):
    """A worker is still in the provider call (its lease is held and renewed): the sweeper does nothing."""
    store, clock, rec, grant, _, request_id = jit
    _killed_mid_grant(store, clock, request_id)
    other_worker = RedisStore(redis.Redis.from_url(URL, decode_responses=True), clock=clock)
    assert other_worker.lease(f'grant:{request_id}', 30)
    clock.t += GRANT_LEASE + 1
    assert grant.recover(request_id) == 'busy'
    assert _requeued(rec) == [] and store.get(request_id).status is S.GRANTING


def test_a_dead_grant_past_the_window_fails_and_is_undone_at_the_provider(jit):
    """The killed call may have reached the provider: failing closed leaves a revoke behind, which runs."""
    store, clock, rec, grant, revoke, request_id = jit
    _killed_mid_grant(store, clock, request_id)
    clock.t += GRANT_RETRY_WINDOW + 1
    assert grant.recover(request_id) == 'failed'
    assert store.get(request_id).status is S.FAILED
    assert store.due_for_revoke(clock.now()) == [request_id]
    assert revoke.execute(request_id) == 'cleaned up'
    assert ('revoke', request_id) in rec.calls and store.due_at(request_id) is None


def test_the_revoke_backstop_waits_for_a_live_grant_attempt(jit):
    """Past the granting deadline the revoke path undoes a stuck grant - but not under a live attempt."""
    store, clock, rec, _, revoke, request_id = jit
    _killed_mid_grant(store, clock, request_id)
    other_worker = RedisStore(redis.Redis.from_url(URL, decode_responses=True), clock=clock)
    assert other_worker.lease(f'grant:{request_id}', 30)
    clock.t += GRANT_RETRY_WINDOW + GRANT_LEASE + 600 + 1
    assert revoke.execute(request_id) == 'busy'
    assert ('revoke', request_id) not in rec.calls
    other_worker.release_lease(f'grant:{request_id}')
    assert revoke.execute(request_id) == 'cleaned up'
    assert store.get(request_id).status is S.FAILED


def test_a_lease_lives_while_renewed_and_lapses_when_its_holder_dies():
    client = redis.Redis.from_url(URL, decode_responses=True)
    a, b = (RedisStore(client, clock=MovableClock(), prefix='jit-lease-test:') for _ in range(2))
    try:
        inside = threading.Event()
        done = threading.Event()

        def hold() -> None:
            with held_lease(a, 'x', 0.3) as mine:
                assert mine
                inside.set()
                done.wait(5)

        holder = threading.Thread(target=hold)
        holder.start()
        inside.wait(5)
        time.sleep(1.0)  # more than three times the TTL: only the heartbeat keeps it
        assert not b.lease('x', 0.3), 'a renewed lease must not lapse under its holder'
        done.set()
        holder.join()
        assert b.lease('x', 0.3), 'released on exit'
        # A holder whose lease lapsed (paused past its TTL) can neither renew nor free the next holder's.
        time.sleep(0.4)
        assert a.lease('y', 0.1) and b.lease('x', 5)
        time.sleep(0.2)
        assert b.lease('y', 5)
        assert not a.renew_lease('y', 5)
        a.release_lease('y')
        assert client.exists('jit-lease-test:lease:y')
    finally:
        for key in client.scan_iter(match='jit-lease-test:*'):
            client.delete(key)


def test_a_requeued_grant_picked_up_at_once_is_not_turned_away(jit):
    """A free worker takes the requeued job the moment it is queued, before the sweeper's check has returned.

    The check's lease must be gone by then: a job that found it held would answer `busy` and do nothing,
    and the request would sit `granting` (perhaps held at the provider) until the next check 30 s later.
    """
    store, clock, rec, grant, _, request_id = jit
    _killed_mid_grant(store, clock, request_id)
    clock.t += GRANT_LEASE + 1
    outcomes = []
    rec.enqueue_grant = lambda rid, **kw: outcomes.append(grant.execute(rid))
    assert grant.recover(request_id) == 'requeued'
    assert outcomes == ['granted']
    assert store.get(request_id).status is S.ACTIVE
