"""The provider answering HTTP 500 for a while, from just before the revokes are due (case 4)."""

from __future__ import annotations

import time

import pytest

from tests.chaos.conftest import approve_all, file_many, make_store, settle, wait_active

pytestmark = [pytest.mark.slow, pytest.mark.redis]

OUTAGE = 30.0


def test_revokes_land_after_a_provider_outage(start_jit, redis_url, slack, webhook):
    """The webhook answers 500 to everything for 30 s starting 1 s before the first revoke is due, then
    recovers: revokes are retried with backoff (forever), so every one lands within ~60 s of the recovery,
    no grant is lost, none is made twice, and the failed attempts were real 500s seen by the target."""
    start_jit(redis_url)
    store = make_store(redis_url)
    ids = file_many(slack, 3, 10, 'chaos provider outage')
    approve_all(slack, ids)
    active = wait_active(store, ids)
    expires = {i: r.expires_at for i, r in active.items()}
    first_due = min(expires.values())
    time.sleep(max(0.0, first_due - 1 - time.time()))
    recovered = time.time() + OUTAGE
    webhook.fail_with(500, until=recovered)
    report = settle('provider-500-outage', webhook, store, ids, timeout=recovered + 60 - time.time(), expires=expires)
    failed = {i: len([c for c in webhook.revokes_for(i) if c.status == 500]) for i in ids}
    landed = {i: next((c.time for c in webhook.revokes_for(i) if c.ok), None) for i in ids}
    after = [t - recovered for t in landed.values() if t is not None]
    print(
        f'   500s answered per request {sorted(failed.values())}; revokes landed '
        f'{", ".join(f"{a:+.1f}" for a in sorted(after))} s after the recovery'
    )
    report.check()
    assert all(n >= 1 for n in failed.values()), failed  # the outage did hit every revoke
    assert all(t >= recovered for t in landed.values())
