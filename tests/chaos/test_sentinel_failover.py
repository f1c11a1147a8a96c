"""Redis Sentinel failover while grants are live and falling due: jit follows the new primary, loses no revoke.

A primary, one replica and three sentinels (``tests/support/redis_server.py`` ``SentinelGroup``); ``jit serve`` and
``jit worker`` are given only the sentinels (``REDIS_SENTINELS``; ``REDIS_URL`` names no host they use). The primary
is SIGKILLed a moment before the first grants expire; the sentinels promote the replica within a few seconds, and
every process finds it on its next reconnect (redis-py's ``SentinelConnectionPool`` asks the sentinels).
"""

from __future__ import annotations

import time

import pytest
import redis
from redis.sentinel import Sentinel

from bot.adapters.redis_store import RedisStore
from bot.deps import SystemClock
from tests.chaos.conftest import approve_all, file_many, settle, wait_active
from tests.support.redis_server import SentinelGroup

pytestmark = [pytest.mark.slow, pytest.mark.redis]


@pytest.fixture(name='sentinel_group')
def _sentinel_group(tmp_path):
    group = SentinelGroup(tmp_path / 'redis-ha', down_after_ms=1000, failover_timeout_ms=5000)
    group.start()
    yield group
    group.stop()


def test_failover_loses_no_revoke_and_grants_none_twice(start_jit, sentinel_group, slack, webhook):
    """6 grants (3 of 10 s, 3 of 16 s); SIGKILL the primary 1 s before the first ones expire: the sentinels promote
    the replica, jit's web and worker processes reconnect to it, and every grant is revoked, none twice. Figures:
    how long until the new primary takes writes, and how late the revokes were."""
    group = sentinel_group
    jit = start_jit(group.primary.url, REDIS_SENTINELS=group.sentinels_setting, REDIS_SENTINEL_MASTER=group.service,
                    JIT_MAX_OPEN_REQUESTS='0')  # fmt: skip
    client = Sentinel([('127.0.0.1', p) for p in group.sentinel_ports], socket_timeout=2).master_for(
        group.service, redis_class=redis.Redis, decode_responses=True, socket_timeout=2, socket_connect_timeout=1
    )
    store = RedisStore(client, clock=SystemClock())
    ids = file_many(slack, 3, 10, 'chaos failover short') + file_many(slack, 3, 16, 'chaos failover long')
    approve_all(slack, ids)
    active = wait_active(store, ids)
    expires = {i: r.expires_at for i, r in active.items()}
    old = group.master_address()
    time.sleep(max(0.0, min(expires.values()) - 1.0 - time.time()))
    killed = time.time()
    group.kill_primary()

    def promoted() -> float | None:
        address = group.master_address()
        if address is None or address == old:
            return None
        try:
            client.set('failover:probe', '1')
        except redis.RedisError:
            return None
        return time.time()

    deadline = time.monotonic() + 30
    while (recovered := promoted()) is None:
        assert time.monotonic() < deadline, 'the sentinels did not promote the replica in 30 s'
        time.sleep(0.05)
    assert group.replica is not None and group.master_address() == ('127.0.0.1', group.replica.port)
    report = settle('sentinel-failover', webhook, store, ids, timeout=max(expires.values()) + 30 - time.time(),
                    expires=expires)  # fmt: skip
    during = [i for i in ids if expires[i] <= recovered]
    print(
        f'   primary killed {min(expires.values()) - killed:.1f} s before the first expiry; new primary took '
        f'writes after {recovered - killed:.1f} s; {len(during)} grants fell due during the failover, worst '
        f'lateness among them {max((report.lateness.get(i, 0) for i in during), default=0) * 1000:.0f} ms'
    )
    report.check()
    assert not report.repeated, f'a grant call was repeated: {report.repeated}'
    assert jit.worker is not None and jit.worker.poll() is None, 'the worker died with the primary'
    assert jit.web is not None and jit.web.poll() is None, 'jit serve died with the primary'
    # jit serve answers from the new primary: a request filed now is stored and offered to its approver.
    [after] = file_many(slack, 1, 10, 'chaos after failover')
    assert store.get(after) is not None


def test_each_step_waits_for_the_replica_and_goes_on_without_one(sentinel_group):
    """With a replica in sync, a committed step is on the replica when the store returns (WAIT 1 on the step's
    own connection); with the replica gone, a step waits at most REPLICA_TIMEOUT_MS once, then not at all."""
    from bot.adapters.redis_connect import REPLICA_TIMEOUT_MS, ReplicaWait
    from bot.core.model import AuditEvent

    group = sentinel_group
    client = Sentinel([('127.0.0.1', p) for p in group.sentinel_ports], socket_timeout=2).master_for(
        group.service, redis_class=redis.Redis, decode_responses=True, socket_timeout=5
    )
    wait = ReplicaWait()
    store = RedisStore(client, clock=SystemClock(), replica_wait=wait)
    assert group.replica is not None
    replica = group.replica.client()
    for n in range(20):
        seq = store.record(AuditEvent(event='test.step', actor='U0TEST', detail={'n': f'{n}'}))
        assert int(replica.hget('jit:audit:head', 'seq')) == seq  # on the replica already: no sleep
    assert wait.wanted()
    group.replica.stop()
    started = time.monotonic()
    store.record(AuditEvent(event='test.step', actor='U0TEST', detail={'n': 'no replica'}))
    first = time.monotonic() - started
    assert first >= REPLICA_TIMEOUT_MS / 1000 * 0.9 and not wait.wanted()
    started = time.monotonic()
    for n in range(5):
        store.record(AuditEvent(event='test.step', actor='U0TEST', detail={'n': f'later {n}'}))
    assert time.monotonic() - started < 0.5  # not waiting again for REPLICA_RETRY_AFTER
