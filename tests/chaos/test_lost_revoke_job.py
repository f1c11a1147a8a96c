"""Everything RQ keeps deleted from Redis by hand (case 5): the revoke does not depend on RQ at all.

Revokes at expiry are not RQ jobs: the revoker of each worker reads the due index. So even with every
``rq:*`` key gone (queues, scheduled registries, job hashes) while grants are active, each grant is revoked
within a few seconds of its expiry, once.
"""

from __future__ import annotations

import time

import pytest

from tests.chaos.conftest import approve_all, file_many, make_store, settle, wait_active

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def test_revokes_need_nothing_rq_keeps(start_jit, redis_url, slack, webhook):
    """Delete every `rq:*` key while the grants are active: every grant is still revoked on time, once."""
    start_jit(redis_url)
    store = make_store(redis_url)
    ids = file_many(slack, 4, 10, 'chaos lost rq')
    approve_all(slack, ids)
    active = wait_active(store, ids)
    expires = {i: r.expires_at for i, r in active.items()}
    rq_keys = [k for k in store.redis.scan_iter('rq:*') if not k.startswith('rq:worker')]
    assert rq_keys, 'the premise: RQ keeps something'
    store.redis.delete(*rq_keys)
    report = settle('rq-state-deleted', webhook, store, ids, timeout=max(expires.values()) + 20 - time.time(),
                    expires=expires)  # fmt: skip
    report.check()
    assert report.worst is not None and report.worst < 1.0, report.lateness
    assert all(r.ok for i in ids for r in webhook.revokes_for(i))
