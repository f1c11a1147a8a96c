"""A worker killed with SIGKILL in the middle of a provider call, then restarted (cases 1 and 2).

The webhook target is made slow (``delay(3)``) so the kill lands while the worker waits for its answer;
the target still applies the call after the delay (the client is gone, the server finishes), which is
what a real provider does with a request it already received.
"""

from __future__ import annotations

import time

import pytest
import redis
from rq.registry import FailedJobRegistry, StartedJobRegistry

from tests.chaos.conftest import (
    S,
    approve_all,
    file_many,
    make_store,
    settle,
    wait_active,
)
from tests.support.processes import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis]


class StandingAccess(AssertionError):
    """The killed grant stayed in force at the provider (the one failure jit exists to prevent)."""


def _lease_holder(store, kind: str) -> str:
    """The request whose ``kind`` (grant/revoke) lease is held right now, i.e. whose call is in flight."""
    keys = store.redis.keys(f'jit:lease:{kind}:*')
    return keys[0].split(':', 3)[3] if keys else ''


def test_worker_killed_mid_grant_completes_once_or_fails_closed(start_jit, redis_url, slack, webhook):
    """SIGKILL the worker while a grant call is in flight, restart it: that grant is completed exactly once
    or failed closed (revoked), every other grant is made once and revoked on time, nothing stays granted."""
    jit = start_jit(redis_url)
    store = make_store(redis_url)
    jit_redis = redis.Redis.from_url(redis_url)
    ids = file_many(slack, 4, 12, 'chaos kill mid-grant')
    webhook.delay(3)
    approve_all(slack, ids)
    victim = wait_until(lambda: _lease_holder(store, 'grant'), timeout=20, interval=0.02, what='a grant in flight')
    time.sleep(1.0)  # the call has reached the target, which is sleeping on it
    jit.kill_worker()
    killed = time.time()
    assert store.get(victim).status is S.GRANTING
    webhook.delay(0)
    jit.start_worker()
    # Every grant is 12 s: the restarted worker has the kill + 30 s to finish or undo the killed grant.
    report = settle('worker-kill-mid-grant', webhook, store, ids, timeout=killed + 30 - time.time())
    victim_state = report.states[victim]
    print(
        f'   victim {victim}: state={victim_state}, held at the provider={victim in webhook.active}, '
        f'ok grant calls={len([c for c in webhook.grants_for(victim) if c.ok])}, '
        f'due in {(store.due_at(victim) or 0) - time.time():.0f} s, '
        f'grant lease ttl={store.redis.pttl(f"jit:lease:grant:{victim}") / 1000:.0f} s, '
        f'rq started={StartedJobRegistry("jit-access", connection=jit_redis).get_job_ids()}, '
        f'rq failed={FailedJobRegistry("jit-access", connection=jit_redis).get_job_ids()}'
    )
    others = [i for i in ids if i != victim]
    assert not [i for i in report.lost if i in others], report.states
    assert not report.twice, report.twice
    for request_id in others:
        assert len([c for c in webhook.grants_for(request_id) if c.ok]) == 1
    if victim in report.lost:
        raise StandingAccess(
            f'{victim} is {victim_state} in jit and held at the provider={victim in webhook.active} '
            f'{time.time() - killed:.0f} s after the kill'
        )


def test_worker_killed_mid_revoke_still_revokes(start_jit, redis_url, slack, webhook):
    """SIGKILL the worker while a revoke call is in flight, restart it: every grant ends up revoked at the
    provider and `revoked` in the store, none is granted twice."""
    jit = start_jit(redis_url)
    store = make_store(redis_url)
    ids = file_many(slack, 4, 10, 'chaos kill mid-revoke')
    approve_all(slack, ids)
    active = wait_active(store, ids)
    expires = {i: r.expires_at for i, r in active.items()}
    webhook.delay(3)
    victim = wait_until(lambda: _lease_holder(store, 'revoke'), timeout=30, interval=0.02, what='a revoke in flight')
    time.sleep(1.0)
    jit.kill_worker()
    killed = time.time()
    webhook.delay(0)
    jit.start_worker()
    # The killed revoke's lease (REVOKE_LEASE, 10 s unless renewed) must lapse before the state can catch up.
    report = settle('worker-kill-mid-revoke', webhook, store, ids, timeout=killed + 80 - time.time(), expires=expires)
    ended = {i: store.get(i).ended_at for i in ids}
    state_lag = max((ended[i] or time.time()) - expires[i] for i in ids)
    print(f'   victim {victim}; worst expires_at -> `revoked` in the store: {state_lag * 1000:.0f} ms')
    report.check()
