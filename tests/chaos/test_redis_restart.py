"""Redis shut down and started again (same data directory, AOF) while grants are active (case 3)."""

from __future__ import annotations

import time

import pytest

from tests.chaos.conftest import approve_all, file_many, make_store, settle, wait_active

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def test_redis_restart_with_aof_loses_no_revoke(start_jit, private_redis, slack, webhook):
    """jit on a private redis-server (appendonly yes, everysec, no snapshots); SHUTDOWN it while 3 grants are
    active, keep it down 4 s, start it on the same dir: the state comes back from the AOF alone and every grant
    is still revoked (by the scheduled job or the sweeper, whichever survived), none granted twice."""
    jit = start_jit(private_redis.url)
    store = make_store(private_redis.url)
    ids = file_many(slack, 3, 12, 'chaos redis restart')
    approve_all(slack, ids)
    active = wait_active(store, ids)
    expires = {i: r.expires_at for i, r in active.items()}
    time.sleep(1.5)  # > appendfsync everysec
    private_redis.shutdown()
    time.sleep(4)
    assert not (private_redis.dir / 'dump.rdb').exists()  # nothing but the AOF carries the state over
    private_redis.start()
    restarted = time.time()
    assert {i: store.get(i).status for i in ids} == {i: active[i].status for i in ids}  # state survived
    report = settle('redis-restart', webhook, store, ids, timeout=max(expires.values()) + 30 - time.time(),
                    expires=expires)  # fmt: skip
    print(
        f'   redis down 4 s, back {max(expires.values()) - restarted:.1f} s before the last expiry; '
        f'worker alive after restart: {jit.worker.poll() is None}'
    )
    report.check()
    assert jit.worker.poll() is None, 'the worker died with the Redis connection'
