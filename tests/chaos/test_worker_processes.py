"""A worker with two access processes (``JIT_WORKER_PROCESSES=2``): a slow grant holds up one grant loop, not
both; they share a burst of revokes, each grant revoked once; a worker killed with both in it is restarted, and
nothing is lost."""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import time

import pytest

from tests.chaos.conftest import approve_all, file_many, make_store, settle, wait_active
from tests.support.processes import wait_until
from workers.revoker import CONCURRENCY

pytestmark = [pytest.mark.slow, pytest.mark.redis]
#: More grants than one process has revoke slots for.
BURST = CONCURRENCY + 16


def _revoked_by(jit) -> dict[str, int]:
    """request ID -> pid of the revoke process that logged revoking it."""
    out: dict[str, int] = {}
    for path in jit.logs.glob('worker-*.log'):
        for line in path.read_text(errors='replace').splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get('event') == 'revoker.revoke' and entry.get('outcome') == 'revoked':
                out[entry['request_id']] = entry['pid']
    return out


def test_two_access_processes_share_grants_and_revokes_and_survive_a_killed_worker(start_jit, redis_url, slack,
                                                                                   webhook):  # fmt: skip
    jit = start_jit(redis_url, JIT_WORKER_PROCESSES='2', JIT_MAX_OPEN_REQUESTS='0', JIT_REQUESTS_PER_HOUR='0')
    store = make_store(redis_url)
    # Round zero: four grants at a target that takes 2 s a call. One grant loop makes each call after the one
    # before has answered, 2 s or more apart; two loops have calls in flight at once. (Asked of the calls'
    # arrival times rather than of the wall clock, which a loaded machine stretches.)
    slow = file_many(slack, 4, 60, 'chaos slow grants')
    webhook.delay(2)
    approve_all(slack, slow)
    wait_active(store, slow)
    arrivals = sorted(c.time for c in webhook.calls if c.request_id in slow and c.action == 'grant' and not c.rejected)
    assert len(arrivals) >= 4
    assert min(b - a for a, b in itertools.pairwise(arrivals)) < 1.5, (
        f'the slow grant calls ran one after another: {arrivals}'
    )
    webhook.delay(0)
    # Round one: a burst larger than one process's revoke slots (CONCURRENCY provider calls in flight), approved
    # at once so that it falls due within a few seconds, at a target that holds each revoke call 8 s (under the
    # webhook's 10 s timeout): ends less than 10 s apart put more than CONCURRENCY calls in flight at once, which one
    # process cannot hold, so the other must take the rest. (With fewer grants than slots, which process revokes
    # which is chance: one may take them all, and did.)
    ids = file_many(slack, BURST, 15, 'chaos two revokers')
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: approve_all(slack, [i]), ids))
    active = wait_active(store, ids, timeout=60)
    ends = sorted(r.expires_at for r in active.values())
    webhook.delay(8)
    report = settle('two-revoke-processes', webhook, store, ids, timeout=90,
                    expires={i: r.expires_at for i, r in active.items()})  # fmt: skip
    report.check()
    by = _revoked_by(jit)
    assert set(ids) <= set(by), 'each grant logged as revoked by one of the processes'
    assert ends[-1] - ends[0] < 10, f'the burst was not one: its ends spread over {ends[-1] - ends[0]:.1f} s'
    assert len({by[i] for i in ids}) == 2, f'one process did it all: {by}'
    assert not report.twice
    # Round two: the worker and its revoke process are killed while grants are due, then started again.
    webhook.delay(0)
    ids = file_many(slack, 6, 10, 'chaos two revokers killed')
    approve_all(slack, ids)
    active = wait_active(store, ids)
    webhook.delay(2)
    wait_until(lambda: time.time() > min(r.expires_at for r in active.values()) + 0.5, timeout=30, what='due')
    jit.kill_worker()
    webhook.delay(0)
    jit.start_worker()
    report = settle('two-revoke-processes-killed', webhook, store, ids, timeout=60,
                    expires={i: r.expires_at for i, r in active.items()})  # fmt: skip
    report.check()
