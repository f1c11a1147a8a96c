"""The revoke lateness rows under load: ``grants`` grants filed through the pipeline API, paced behind the
worker, with durations chosen so that they all end within about a second; each revoke's lateness is its first
successful call at the webhook target minus the ``expires_at`` jit stored. Run with one ``jit worker``
(measuring Redis memory on the way) and again with two."""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter

from bench.load.clients import Api
from bench.load.common import Skip, cpu_seconds, ms, pct, wait_for, with_children
from bench.load.filing import expiries, file_paced
from bench.load.harness import Bench
from bench.load.memory import key_memory, put_memory
from bench.load.observe import notify_backlog


def calibrate(bench: Bench, api: Api, count: int, backlog: int) -> tuple[float, float]:
    """Grants per second and the filing-to-grant lag, paced as the burst is; the grants are released after."""
    filed = file_paced(bench, api, count, lambda now: 3600, backlog, 'bench calibration')
    wait_for(lambda: all(i in bench.watch.grants for i in filed), 30, 0.05)
    granted = [i for i in filed if i in bench.watch.grants]
    if len(granted) < count // 2:
        raise Skip(f'calibration: only {len(granted)} of {count} granted within 30 s')
    span = max(bench.watch.grants[i] for i in granted) - min(filed[i] for i in granted)
    lag = statistics.median(bench.watch.grants[i] - filed[i] for i in granted)
    for request_id in filed:
        api.call('POST', f'/api/v1/requests/{request_id}/release')
    wait_for(lambda: all(i in bench.watch.revokes for i in filed), 30, 0.1)
    bench.ended_ids.extend(filed)
    return len(granted) / max(span, 0.001), lag


def burst(bench: Bench, api: Api, row: str, *, measure_memory: bool) -> None:
    """``grants`` grants filed paced behind the worker, with durations that make them all end at one moment."""
    n = bench.scale.grants
    bench.need(40 + n / 25)
    backlog = 8
    rate, lag0 = calibrate(bench, api, bench.scale.calibration, backlog)
    bench.drain_notify(2, 20)
    client = bench.client(2)
    before = key_memory(client) if measure_memory else None
    # Filing, then time for the notifications it queued to drain (so the grants all end on a settled worker,
    # as grants made over a longer time would), then the end.
    filing_time = n / (0.6 * rate)
    bench.need(filing_time + n * 0.02 + 50)
    end = time.time() + max(14.0, filing_time + 8.0 + n * 0.02)
    lag = [lag0]
    clamped = Counter[str]()

    def duration_for(now: float) -> int:
        seconds = round(end - now - lag[0])
        if seconds < 10:
            clamped['short'] += 1
        return max(10, seconds)

    workers = with_children([p.worker.pid for p in bench.started if p.worker is not None and p.worker.poll() is None])
    worker_cpu = sum(cpu_seconds(pid) for pid in workers)
    filed = file_paced(bench, api, n, duration_for, backlog, f'bench {row}', lag)
    ids = list(filed)
    filed_span = max(filed.values()) - min(filed.values())
    wait_for(lambda: all(i in bench.watch.grants for i in ids), max(1.0, end - time.time() - 3), 0.05)
    all_active = all(i in bench.watch.grants for i in ids)
    after = None
    wait_for(lambda: notify_backlog(client) == 0, max(0.0, end - time.time() - 4), 0.2)
    queued = notify_backlog(client)
    if measure_memory and time.time() < end - 1.5 and all_active:
        after = key_memory(client)
    expires = expiries(bench, ids)
    wait_for(lambda: all(i in bench.watch.revokes for i in ids), max(5.0, end - time.time()) + 60 + n / 20, 0.25)
    bench.ended_ids.extend(ids)
    worker_cpu = sum(cpu_seconds(pid) for pid in workers) - worker_cpu
    late = [bench.watch.revokes[i] - expires[i] for i in ids if i in bench.watch.revokes and i in expires]
    if not late:
        raise Skip('no grant was revoked in time to measure')
    ends = sorted(expires.values())
    spread = pct(ends, 99) - pct(ends, 1)
    missing = len(ids) - len(late)
    value = (f'p99 {ms(pct(late, 99))} / max {ms(max(late))} (p50 {ms(pct(late, 50))}); {len(ids):,} grants '
             f'filed in {filed_span:.1f} s, ending within {spread:.2f} s (p1 to p99), {ends[-1] - ends[0]:.2f} s '
             f'(all)')  # fmt: skip
    if missing:
        value += f'; {missing} not revoked within the wait'
    if clamped:
        value += f'; {clamped["short"]} filed too late to end with the rest'
    if queued:
        value += f'; {queued} audit events not yet shown in Slack 4 s before the end'
    baseline = f'one grant alone: {ms(bench.idle_first)}' if bench.idle_first is not None else ''
    bench.put(row, value, baseline, pct(late, 99) <= 1.5 and max(late) <= 1.5 and not missing)
    arrivals = sorted(bench.watch.revokes[i] for i in ids if i in bench.watch.revokes)
    bench.note(f'{row}: revokes arrived over {arrivals[-1] - arrivals[0]:.2f} s '
               f'({len(arrivals) / max(arrivals[-1] - arrivals[0], 0.001):.0f}/s); done by: '
               + ', '.join(f'{k} x{v}' for k, v in revoked_by(bench, set(ids)).most_common()))  # fmt: skip
    bench.note(f'{row}: calibration {rate:.0f} grants/s, lag {ms(lag0)}; worker CPU {ms(worker_cpu / n)} per '
               f'grant (grant, revoke, notifications); last of the revokes arrived '
               f'{ms(max(bench.watch.revokes[i] for i in ids if i in bench.watch.revokes) - ends[-1])} after the '
               f'last expires_at')  # fmt: skip
    if measure_memory:
        put_memory(bench, before, after, n, queued)


def revoked_by(bench: Bench, ids: set[str]) -> Counter[str]:
    """Which worker process (log file) and which path (revoker thread, job, sweeper) revoked ``ids``."""
    found: Counter[str] = Counter()
    for _, folder in bench.worker_logs:
        for path in folder.glob('worker-*.log'):
            for line in path.read_text(errors='replace').splitlines():
                if '"revoked"' not in line:
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and entry.get('request_id') in ids and entry.get('outcome') == 'revoked':
                    found[f'{path.parent.name}/{path.name} {entry.get("event")}'] += 1
    return found
