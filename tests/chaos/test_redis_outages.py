"""Redis goes away again and again, at random points of grants, revokes, sweeps and the audit pump.

Ten rounds: two requests are filed and approved, and at a random moment after the approval (a grant call
in flight at a slow target, revokes of earlier rounds falling due, the sweeper and the audit pump at work)
Redis is shut down for 1-10 s and started again on the same AOF. Afterwards every process of jit is still
running, ``/readyz`` says ready again, every grant is revoked, nothing is granted twice, and the audit file
holds every event of the stream, each once.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request

import pytest

from bot.core.model import RequestStatus
from tests.chaos.conftest import approve_all, file_many, make_store, settle
from tests.support.processes import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis]

ROUNDS = 10
SETTLED = (RequestStatus.ACTIVE, RequestStatus.REVOKED, RequestStatus.FAILED)


def readyz(url: str) -> int:
    try:
        with urllib.request.urlopen(f'{url}/readyz', timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_no_process_dies_of_a_redis_outage_and_no_revoke_is_lost(start_jit, private_redis, slack, webhook, tmp_path):
    """Ten outages of 1-10 s at random points: the web process and the worker stay up, every grant ends."""
    rng = random.Random(20261206)
    audit = tmp_path / 'audit.jsonl'
    jit = start_jit(private_redis.url, JIT_AUDIT_FILE=str(audit))
    store = make_store(private_redis.url)
    webhook.delay(2.0)  # a grant or revoke call is in flight when Redis goes
    ids: list[str] = []
    saw_unready = False
    for round_ in range(ROUNDS):
        batch = file_many(slack, 2, 10, f'outage round {round_}')
        approve_all(slack, batch)
        ids += batch
        time.sleep(rng.uniform(0.1, 1.5))
        private_redis.shutdown()  # SHUTDOWN flushes the AOF: nothing acknowledged is lost
        down = rng.uniform(1.0, 10.0)
        deadline = time.monotonic() + down
        if readyz(jit.url) == 503:
            saw_unready = True
        time.sleep(max(0.0, deadline - time.monotonic()))
        private_redis.start()
        assert jit.web.poll() is None, f'jit serve exited in round {round_}\n{jit.dump_logs()}'
        assert jit.worker.poll() is None, f'jit worker exited in round {round_}\n{jit.dump_logs()}'
        wait_until(lambda: readyz(jit.url) == 200, timeout=20, what=f'/readyz ready after round {round_}')
        if rng.random() < 0.3:  # now and then, let the round's grants get through before the next outage
            wait_until(lambda b=batch: all(store.get(i).status in SETTLED for i in b), timeout=60,
                       what=f'round {round_} granted or ended')  # fmt: skip
    report = settle('redis-outages', webhook, store, ids, timeout=90)
    report.check()
    assert saw_unready, '/readyz never said 503 while Redis was down'
    assert jit.web.poll() is None and jit.worker.poll() is None, jit.dump_logs()
    # The audit pump caught up: every event of the stream once, in order, in the file.
    last = max(int(e['seq']) for e in store.audit_events(1, 100_000))

    def pumped() -> list[int] | None:
        seqs = [json.loads(line)['seq'] for line in audit.read_text().splitlines()] if audit.exists() else []
        return seqs if seqs and seqs[-1] >= last else None

    seqs = wait_until(pumped, timeout=30, what='the audit pump to catch up')
    assert seqs == sorted(set(seqs)) and seqs[0] == 1, 'the audit file repeats or skips events'
