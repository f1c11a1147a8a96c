"""Two approvers and one signed click replayed 200 times at the same instant (case 6)."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pytest

from tests.chaos.conftest import (
    SAM,
    SEC,
    approval_copy,
    file_many,
    make_store,
    settle,
    wait_active,
)

pytestmark = [pytest.mark.slow, pytest.mark.redis]

REPLAYS = 200


def test_replayed_clicks_and_two_approvers_grant_once(start_jit, redis_url, slack, webhook):
    """For each of 4 requests, sam's signed Approve click is posted 200 times at once and sec clicks Approve
    in the middle of them: each request is approved once (one `request.approved` event), granted once at the
    provider, and revoked when its 10 s are up."""
    start_jit(redis_url)
    store = make_store(redis_url)
    ids = file_many(slack, 4, 10, 'chaos replayed clicks')
    statuses: set[int] = set()
    with concurrent.futures.ThreadPoolExecutor(max_workers=REPLAYS + 1) as pool:
        for request_id in ids:
            sam_copy, sec_copy = approval_copy(slack, SAM, request_id), approval_copy(slack, SEC, request_id)
            signed = slack.driver._click(SAM, sam_copy, 'jit.approve', None, True)
            gate = threading.Barrier(REPLAYS + 1)

            def replay(signed=signed, gate=gate):
                gate.wait(30)
                return slack.driver.post_raw(signed.body, signed.headers)

            def other(sec_copy=sec_copy, gate=gate):
                gate.wait(30)
                return slack.driver.click(SEC, sec_copy, 'jit.approve', strict=False)

            futures = [pool.submit(replay) for _ in range(REPLAYS)]
            futures.insert(REPLAYS // 2, pool.submit(other))
            statuses |= {f.result(timeout=60).status for f in futures}
    assert statuses == {200}, statuses
    active = wait_active(store, ids)
    expires = {i: r.expires_at for i, r in active.items()}
    approvals = {i: [e for e in store.audit_events(count=10000) if e['event'] == 'request.approved'
                     and (e.get('request') or {}).get('id') == i] for i in ids}  # fmt: skip
    report = settle('replayed-clicks', webhook, store, ids, timeout=max(expires.values()) + 20 - time.time(),
                    expires=expires)  # fmt: skip
    print(
        f'   approvals recorded per request: {sorted(len(a) for a in approvals.values())}; '
        f'approved by {sorted({a[0]["actor"] for a in approvals.values() if a})}'
    )
    report.check()
    assert all(len(a) == 1 for a in approvals.values()), approvals
    assert all(len(webhook.grants_for(i)) == 1 for i in ids)
