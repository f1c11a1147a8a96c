"""The scheduled revoke job deleted from Redis by hand (case 5): the sweeper is the layer that remains."""

from __future__ import annotations

import time

import pytest

from tests.chaos.conftest import approve_all, file_many, make_store, settle, wait_active

pytestmark = [pytest.mark.slow, pytest.mark.redis]

SCHEDULED = 'rq:scheduled:jit-access'


def test_sweeper_revokes_when_the_scheduled_job_is_gone(start_jit, redis_url, slack, webhook):
    """Delete every `rq:job:revoke-<id>` hash and its entry in RQ's scheduled registry while the grants are
    active: the sweeper still revokes each one within a few seconds of its expiry, once."""
    start_jit(redis_url)
    store = make_store(redis_url)
    ids = file_many(slack, 4, 10, 'chaos lost revoke job')
    approve_all(slack, ids)
    active = wait_active(store, ids)
    expires = {i: r.expires_at for i, r in active.items()}
    for request_id in ids:
        job = f'revoke-{request_id}'
        assert store.r.exists(f'rq:job:{job}') and store.r.zscore(SCHEDULED, job) is not None  # the premise
        assert store.r.delete(f'rq:job:{job}') == 1 and store.r.zrem(SCHEDULED, job) == 1
    assert not [j for j in store.r.zrange(SCHEDULED, 0, -1) if j.startswith('revoke-')]
    report = settle('revoke-job-deleted', webhook, store, ids, timeout=max(expires.values()) + 20 - time.time(),
                    expires=expires)  # fmt: skip
    report.check()
    assert report.worst is not None and report.worst < 5.0, report.lateness
    assert all(r.ok for i in ids for r in webhook.revokes_for(i))
