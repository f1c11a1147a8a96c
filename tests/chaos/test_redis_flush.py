"""Redis flushed entirely while grants are live at the provider (case 6): the reconciler removes them.

Nothing in jit remembers these grants any more - no request, no revoke job, no entry for the sweeper.
What is left is the provider, which lists what jit created there (each object carries its request ID);
the worker's periodic reconcile revokes every one the store does not hold as active, with an audit event.
"""

from __future__ import annotations

import time

import pytest
import redis

from tests.chaos.conftest import approve_all, file_many, make_store, wait_active
from tests.support.processes import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis]

RECONCILE_EVERY = 3


def test_reconciler_removes_grants_left_live_by_a_flushed_redis(start_jit, redis_url, slack, webhook):
    jit = start_jit(redis_url, JIT_RECONCILE_INTERVAL=str(RECONCILE_EVERY))
    store = make_store(redis_url)
    ids = file_many(slack, 4, 60, 'chaos redis flushed')
    approve_all(slack, ids)
    active = wait_active(store, ids)
    redis.Redis.from_url(redis_url).flushdb()
    flushed = time.time()
    assert set(ids) <= set(webhook.active), 'the premise: all four live at the provider'
    wait_until(lambda: not set(ids) & set(webhook.active), timeout=RECONCILE_EVERY * 3 + 5, interval=0.1,
               what='orphans revoked by the reconciler')  # fmt: skip
    removed = {i: min(c.time for c in webhook.revokes_for(i) if c.ok) - flushed for i in ids}
    worst = max(removed.values())
    print(f'\nCHAOS redis-flushed: revokes lost=0, worst flush -> revoked={worst * 1000:.0f} ms, granted twice=0')
    assert all(removed[i] < active[i].expires_at - flushed for i in ids), 'removed long before they would expire'
    assert all(len([c for c in webhook.grants_for(i) if c.ok]) == 1 for i in ids), 'nothing granted again'

    def revoked_events():
        return [e for e in store.audit_events() if e['event'] == 'grant.revoked']

    # The reconciler records each revoke just after the provider confirmed it: on a loaded machine, a moment later.
    wait_until(lambda: len(revoked_events()) >= len(ids), timeout=10, what='an audit event for each orphan')
    events = revoked_events()
    assert sorted(e['request']['id'] for e in events) == sorted(ids), 'one audit event per orphan, in the new stream'
    assert all(e['actor'] == 'reconciler' and 'not known to jit' in e['detail']['why'] for e in events)
    assert jit.worker is not None and jit.worker.poll() is None, 'the worker survives its Redis being flushed'
