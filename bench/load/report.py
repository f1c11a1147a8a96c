"""The end of the load benchmark: the rows checked over the whole run (RSS, revokes lost, grants made twice),
the notes counted from what the workers logged, and the Markdown table with the machine it ran on."""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter

from bench.load.common import QUICK, loadavg, machine, ms
from bench.load.harness import ROWS, Bench
from bench.load.observe import verdicts


def finish(bench: Bench) -> None:
    """The rows taken from the whole run, then the notes from the workers' logs."""
    calls, active = [], set()
    for webhook, watch in bench.targets:
        watch.poll()
        calls += webhook.calls
        active |= set(webhook.active)
    if 'rss' not in bench.rows:
        parts = []
        for name, value in (('Slack-driven', bench.rss_a), ('API-driven', bench.rss_b)):
            if value is not None:
                parts.append(f'{value:.0f} MB ({name})')
        bench.put('rss', '; '.join(parts) if parts else 'n/a (no web process ran)')
    if bench.ended_ids:
        lost, twice, repeated = verdicts(calls, bench.ended_ids)
        still = active & set(bench.ended_ids)
        lost = sorted(set(lost) | still)
        bench.put('lost', f'{len(lost)} of {len(bench.ended_ids):,}' + (f' (e.g. {lost[:3]})' if lost else ''), '',
                  not lost)  # fmt: skip
        bench.put('twice', f'{len(twice)} granted again after the revoke; {len(repeated)} grant calls repeated '
                           f'before it', '', not twice and not repeated)  # fmt: skip
    log_evidence(bench)


def log_evidence(bench: Bench) -> None:
    """What the workers logged, counted per installation: jit's own events (revokes, warnings) and how long
    RQ took per job function (for reading a slow row)."""
    done = re.compile(r'Successfully completed (?:workers\.jobs\.)?(\w+)\(.*\) job in (\d+):(\d+):([\d.]+)s')
    for name in dict.fromkeys(n for n, _ in bench.worker_logs):
        events: Counter[str] = Counter()
        jobs: dict[str, list[float]] = {}
        for _, folder in (w for w in bench.worker_logs if w[0] == name):
            for path in folder.glob('worker-*.log'):
                for line in path.read_text(errors='replace').splitlines():
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if not isinstance(entry, dict):
                        continue
                    event, level = str(entry.get('event', '')), str(entry.get('level', ''))
                    if found := done.search(event):
                        hours, minutes, seconds = found.group(2, 3, 4)
                        jobs.setdefault(found.group(1), []).append(
                            int(hours) * 3600 + int(minutes) * 60 + float(seconds))  # fmt: skip
                    elif re.fullmatch(r'[a-z_]+(\.[a-z_]+)+', event) and (
                            'revoke' in event or level in ('warning', 'error', 'critical')):  # fmt: skip
                        outcome = entry.get('outcome')
                        events[event + (f' ({outcome})' if outcome else '') + (
                            f' [{level}]' if level in ('warning', 'error', 'critical') else '')] += 1  # fmt: skip
        if jobs:
            bench.note(f'{name} worker, RQ job run times: ' + '; '.join(
                f'{job} x{len(t)} median {ms(statistics.median(t))}, max {ms(max(t))}'
                for job, t in sorted(jobs.items(), key=lambda kv: -len(kv[1]))))  # fmt: skip
        if events:
            bench.note(f'{name} worker, log lines: ' + '; '.join(f'{k} x{v}' for k, v in events.most_common(12)))


def table(bench: Bench) -> str:
    """The Markdown table (every row, measured or ``n/a``), the machine, and the notes."""
    info = machine()
    lines = ['| figure | measured | baseline, same run | target | meets |', '|---|---|---|---|---|']
    for key in ROWS:
        figure, target = bench.label(key)
        row = bench.rows.get(key, (figure, 'n/a (not run)', '—', target, '—'))
        lines.append('| ' + ' | '.join(row) + ' |')
    lines += [
        '',
        f'Machine: {info["cpu"]}, {info["cores"]} cores; Python {info["python"]}; Redis {bench.redis_version}. '
        f'Load average {bench.load_before} at the start, {loadavg()} at the end. '
        f'Elapsed: {bench.elapsed():.0f} s' + (' (--quick)' if bench.scale is QUICK else '') + '.',
    ]
    if bench.notes:
        lines += ['', 'Notes:', *(f'- {n}' for n in bench.notes)]
    return '\n'.join(lines)
