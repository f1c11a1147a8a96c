"""The provider answering HTTP 500 for two minutes, from just before the revokes are due (case 4)."""

from __future__ import annotations

import time

import pytest

from tests.chaos.conftest import SEC, S, approve_all, file_many, make_store, settle, wait_active

pytestmark = [pytest.mark.slow, pytest.mark.redis]

OUTAGE = 120.0


def test_revokes_land_after_a_provider_outage(start_jit, redis_url, slack, webhook):
    """The webhook answers 500 to everything for two minutes starting 1 s before the first revoke is due,
    then recovers. Revokes are retried with backoff (capped at 15 s), so every one lands within ~15 s of the
    recovery; after about a minute of failures each grant is `revoke_failed` and the admins are told (the
    audit channel and a DM); no grant is lost, none is made twice, the failures were real 500s."""
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
    time.sleep(max(0.0, recovered - 5 - time.time()))
    during = {i: store.get(i).status for i in ids}
    report = settle('provider-500-outage', webhook, store, ids, timeout=recovered + 30 - time.time(), expires=expires)
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
    assert max(after) < 20, f'a revoke landed {max(after):.1f} s after the recovery: backoff cap not honoured'
    assert set(during.values()) == {S.REVOKE_FAILED}, f'after ~2 min of failures: {during}'
    alerts = [e for e in store.audit_events() if e['event'] == 'grant.revoke_failed']
    assert sorted(e['request']['id'] for e in alerts) == sorted(ids), 'one revoke_failed event per grant'
    told = [m.content for m in slack.workspace.messages(slack.workspace.dm_channel_id(SEC))]
    assert sum('grant.revoke_failed' in m for m in told) == len(ids), 'the admin (sec) got a DM per grant'
    print(f'   during the outage: {sorted(set(map(str, during.values())))}; admin DMs: {len(told)}')
