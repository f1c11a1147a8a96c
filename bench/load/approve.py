"""The approve to grant row: ``clicks`` approvals sent at once, each click's sending to its grant call
arriving at the webhook target, beside empty RQ jobs put on ``jit worker``'s access queue (the baseline:
enqueue to start, all at once and one alone). Approves the requests the ack part filed."""

from __future__ import annotations

import statistics
import time
from datetime import UTC
from typing import Any

from bench.load.clients import post_at_once
from bench.load.common import SAM, Skip, ms, pct, wait_for
from bench.load.harness import Bench


def approve_to_grant(bench: Bench, filed: dict[str, str]) -> None:
    """``clicks`` approvals sent at once by sam; each click to the grant call's arrival at the target."""
    bench.need(60)
    from rq import Queue
    from rq.job import Job

    ids = list(filed.values())[: bench.scale.clicks]
    if len(ids) < bench.scale.clicks:
        raise Skip(f'only {len(ids)} requests were filed by the ack part')
    dm = bench.slack.workspace.dm_channel_id(SAM)

    def copies() -> dict[str, Any] | None:
        found = {}
        for message in bench.slack.workspace.messages(dm):
            for request_id in ids:
                if request_id in message.content and 'jit.approve' in message.action_ids:
                    found[request_id] = message
        return found if len(found) == len(ids) else None

    messages = wait_for(copies, 90, 0.5)
    if not messages:
        raise Skip("the approval messages did not all reach sam's DM within 90 s")
    backlog = bench.drain_notify(1, 45)
    client = bench.client(1)

    # The baseline: empty jobs on the worker's access queue, all at once, enqueue to start (RQ's record).
    queue = Queue('jit-access', connection=client)
    enqueued: dict[str, float] = {}
    for i in range(bench.scale.clicks):
        job_id = f'bench-empty-{i}'
        enqueued[job_id] = time.time()
        queue.enqueue('time.time', job_id=job_id, result_ttl=60, failure_ttl=60)

    def started() -> list[Any] | None:
        jobs = Job.fetch_many(list(enqueued), connection=client)
        return jobs if all(j is not None and j.started_at for j in jobs) else None

    jobs = wait_for(started, 30, 0.1)
    if not jobs:
        raise Skip('the empty RQ jobs did not start within 30 s')
    waits = [_ts(j.started_at) - enqueued[j.id] for j in jobs]
    alone = []
    for i in range(5):
        job_id = f'bench-alone-{i}'
        at = time.time()
        queue.enqueue('time.time', job_id=job_id, result_ttl=60, failure_ttl=60)
        job = Job.fetch(job_id, connection=client)

        def begun(job: Job = job) -> bool:
            job.refresh()
            return job.started_at is not None

        if wait_for(begun, 10, 0.02):
            alone.append(_ts(job.started_at) - at)
        time.sleep(0.1)

    items = []
    for request_id in ids:
        out = bench.slack.driver._click(SAM, messages[request_id], 'jit.approve', None, True)
        items.append((bench.slack.app_url, out.body, out.headers))
    answers = post_at_once(items)
    wait_for(lambda: all(i in bench.watch.grants for i in ids), 60, 0.1)
    acks = [a.elapsed for a in answers]
    last = max([bench.watch.grants[i] for i in ids if i in bench.watch.grants], default=float('nan'))
    bench.note(f'clicks: ack p50 {ms(pct(acks, 50))}, p95 {ms(pct(acks, 95))}; the last grant call arrived '
               f'{ms(last - min(a.sent for a in answers))} after the first click')  # fmt: skip
    delays = [bench.watch.grants[i] - a.sent for i, a in zip(ids, answers, strict=True) if i in bench.watch.grants]
    missing = len(ids) - len(delays)
    if not delays:
        raise Skip('no grant reached the webhook target within 60 s')
    p95 = pct(delays, 95)
    value = f'p95 {ms(p95)} (p50 {ms(pct(delays, 50))}, max {ms(max(delays))})'
    if missing:
        value += f'; {missing} not granted within 60 s'
    bad = [a for a in answers if a.status != 200]
    if bad:
        value += f'; {len(bad)} clicks not acked 200'
    baseline = f'p95 {ms(pct(waits, 95))} ({len(waits)} at once); one alone: median {ms(statistics.median(alone))}'
    bench.put('grant', value, baseline, p95 <= 0.150 and not missing)
    if backlog:
        bench.note(f'grant: {backlog} audit events not yet shown in Slack when the clicks were sent')


def _ts(when: Any) -> float:
    """An RQ job's time (naive means UTC) as a Unix time."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return float(when.timestamp())
