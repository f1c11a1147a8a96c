"""The edge fuzz of ``tests/fuzz`` at a larger count, against a real ``jit serve`` + ``jit worker``: a table.

Run: ``python -m bench.edge_fuzz [COUNT]`` (default 20,000; half signed, half unsigned or wrongly signed).
Needs redis-server; starts one of its own. Prints what was sent, the answers by
status and signing, by kind, latencies, and every violation of product.md §7 it saw (a 5xx, an unsigned
request not refused as it should be, a Redis change from an unsigned request, a traceback in the log).
"""

from __future__ import annotations

import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

import redis
from hypothesis import HealthCheck, Phase, given, settings

from bot.sandbox.local_slack import LocalSlack
from bot.sandbox.webhook_target import WebhookTarget
from bot.sandbox.workspace import seed_workspace
from tests.fuzz.edge import (
    FUZZ_REDIS_URL,
    UNSIGNED,
    Case,
    EdgeClient,
    cases,
    log_lines,
    problems,
    settled_snapshot,
    snapshot,
)
from tests.support.policies import E2E_POLICY as POLICY
from tests.support.processes import JitProcesses, free_port
from tests.support.slack import SIGNING_SECRET, WEBHOOK_SECRET


def start(tmp: Path, slack: LocalSlack, webhook: WebhookTarget) -> JitProcesses:
    (tmp / 'policies').mkdir()
    (tmp / 'policies' / 'policy.yaml').write_text(textwrap.dedent(POLICY))
    (tmp / 'logs').mkdir()
    env = {
        'SLACK_BOT_TOKEN': slack.bot_token, 'SLACK_SIGNING_SECRET': SIGNING_SECRET, 'SLACK_API_URL': slack.api_url,
        'REDIS_URL': FUZZ_REDIS_URL, 'JIT_POLICY_DIR': str(tmp / 'policies'), 'JIT_AUDIT_CHANNEL': 'C0AUDIT',
        'PORT': str(free_port()), 'JIT_HOST': '127.0.0.1', 'JIT_SWEEP_INTERVAL': '1', 'JIT_LOG_FORMAT': 'json',
        'DEMO_WEBHOOK_URL': webhook.url, 'DEMO_WEBHOOK_SECRET': WEBHOOK_SECRET,
    }  # fmt: skip
    procs = JitProcesses(env, tmp / 'logs')
    procs.start_web()
    procs.start_worker()
    slack.app_url = f'{procs.url}/slack/events'
    return procs


def run(client: EdgeClient, count: int, signings: tuple[str, ...], before: dict[bytes, bytes] | None,
        db: redis.Redis) -> list[str]:  # fmt: skip
    """Send ``count`` generated requests; return the violations seen (the run does not stop at the first)."""
    violations: list[str] = []

    @settings(max_examples=count, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=cases(signings=signings))
    def send(case: Case) -> None:
        answer = client.send(case, SIGNING_SECRET)
        where = f'{case.signing} {case.kind} {case.content_type!r} {case.body[:120]!r} -> {answer.status}'
        if answer.status >= 500:
            violations.append(f'5xx: {where}')
        elif case.expected is not None and answer.status not in case.expected:
            violations.append(f'expected {sorted(case.expected)}: {where}')
        if before is not None and snapshot(db) != before:
            violations.append(f'state changed: {where}')
            before.clear()
            before.update(snapshot(db))

    send()
    return violations


def table(title: str, rows: list[tuple[str, object]]) -> str:
    width = max(len(k) for k, _ in rows)
    return '\n'.join([f'{title}', *(f'  {k:<{width}}  {v}' for k, v in rows)])


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    db = redis.Redis.from_url(FUZZ_REDIS_URL)
    db.flushdb()
    slack = LocalSlack(workspace=seed_workspace(), signing_secret=SIGNING_SECRET)
    webhook = WebhookTarget(WEBHOOK_SECRET)
    slack.start_in_thread()
    webhook.start_in_thread()
    with tempfile.TemporaryDirectory() as tmp:
        procs = start(Path(tmp), slack, webhook)
        try:
            mint = lambda: slack.mint_trigger('U0ALEX')  # noqa: E731
            unsigned, signed = EdgeClient(procs.port, mint), EdgeClient(procs.port, mint)
            started = time.monotonic()
            violations = run(unsigned, count // 2, UNSIGNED, settled_snapshot(db), db)
            violations += run(signed, count - count // 2, ('valid',), None, db)
            elapsed = time.monotonic() - started
            time.sleep(2)
            healthy = unsigned.get('/healthz') == 200 and procs.web is not None and procs.web.poll() is None
            found = problems(log_lines(procs))
            refused = sum(1 for line in log_lines(procs) if isinstance(line, dict)
                          and line.get('event') == 'slack.rejected')  # fmt: skip
        finally:
            procs.stop()
            slack.stop_thread()
            webhook.stop_thread()
            db.flushdb()
    both = [unsigned.figures, signed.figures]
    statuses = sorted(set(unsigned.figures.by_status) | set(signed.figures.by_status))
    kinds: Counter[str] = unsigned.figures.by_kind + signed.figures.by_kind
    latencies = unsigned.figures.latencies + signed.figures.latencies
    ordered = sorted(latencies)
    print(table('edge fuzz', [
        ('bodies sent', f'{len(latencies)} in {elapsed:.1f} s ({len(latencies) / elapsed:.0f}/s)'),
        *((f'status {s}', f'unsigned/wrong {unsigned.figures.by_status[s]:>6}   '
                          f'signed {signed.figures.by_status[s]:>6}') for s in statuses),
        ('latency p50 / p99 / max', ' / '.join(f'{ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000:.1f}'
                                               for p in (0.5, 0.99, 1.0)) + ' ms'),
        ('refusals logged (slack.rejected)', refused),
        ('web process healthy after', healthy),
        ('log lines with a traceback or error', len(found)),
        ('violations', len(violations)),
    ]))  # fmt: skip
    print(table('by kind', sorted(kinds.items())))
    for figures, name in zip(both, ('unsigned', 'signed'), strict=True):
        print(figures.line(name))
    for line in violations[:30]:
        print('VIOLATION', line)
    for line in found[:10]:
        print('LOG', str(line)[:1500])


if __name__ == '__main__':
    main()
