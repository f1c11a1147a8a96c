"""The load benchmark's run, part by part: the setup, the Slack-driven installation (acks, approve to grant,
Slack calls), the API-driven one (idle revokes, then the burst with one worker and with two), the policy
decisions, the checks over the whole run; then the table. ``python -m bench.load`` runs :func:`main`."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from bench import load as package
from bench.load.acks import acks, bare_app
from bench.load.approve import approve_to_grant
from bench.load.burst import burst
from bench.load.clients import Api
from bench.load.common import FULL, QUICK, rss_mb
from bench.load.harness import ROWS, Bench
from bench.load.idle import idle
from bench.load.report import finish, table
from bench.load.slack_calls import slack_calls


def slack_parts(bench: Bench) -> None:
    """The first installation, driven through Slack: acks, approve to grant, Slack calls."""
    bench.need(60)
    procs = bench.start_jit('slack', db=1)
    try:
        filed: dict[str, str] = {}
        bench.part('ack', ('ack',), lambda: acks(bench, procs, filed))
        bench.part('approve to grant', ('grant',), lambda: approve_to_grant(bench, filed))
        bench.part('slack calls', ('calls',), lambda: slack_calls(bench))
        bench.rss_a = rss_mb(procs.web.pid if procs.web else None)
    finally:
        procs.stop()


def api_parts(bench: Bench) -> None:
    """The second installation, driven through the pipeline API: idle revokes, the burst with one worker and
    (a second ``jit worker`` started beside the first) with two."""
    bench.need(60)
    from bot.api.tokens import hash_token, new_token

    token = new_token()
    procs = bench.start_jit('api', db=2, JIT_API_TOKENS=f'bench:{hash_token(token)}')
    api = Api(procs.url, token)
    try:
        bench.part('idle revokes', ('idle',), lambda: idle(bench, api))
        bench.part(
            'burst, one worker', ('revoke1', 'memory'), lambda: burst(bench, api, 'revoke1', measure_memory=True)
        )

        def second_worker() -> None:
            bench.need(60)
            from tests.support.processes import JitProcesses

            (procs.logs / 'second').mkdir()
            extra = JitProcesses(dict(procs.env), procs.logs / 'second')
            bench.started.append(extra)
            bench.worker_logs.append(('api', procs.logs / 'second'))
            extra.start_worker()
            left = bench.drain_notify(2, min(60.0, bench.scale.budget - bench.elapsed() - 120))
            if left:
                bench.note(f'revoke2: {left} audit events not yet shown in Slack at the start')
            burst(bench, api, 'revoke2', measure_memory=False)

        bench.part('burst, two workers', ('revoke2',), second_worker)
        bench.rss_b = rss_mb(procs.web.pid if procs.web else None)
    finally:
        for started in bench.started:
            started.stop()


def decisions(bench: Bench) -> None:
    """Policy decisions per second, as ``bench/decisions.py`` measures them (its last row)."""
    bench.need(20)
    done = subprocess.run([sys.executable, '-m', 'bench.decisions'], capture_output=True, text=True, timeout=120,
                          check=True)  # fmt: skip
    last = [line for line in done.stdout.splitlines() if line.startswith('|')][-1]
    cells = [c.strip() for c in last.strip('|').split('|')]
    bench.put('decisions', f'{cells[-1]}/s (load {cells[-2]})')


def main(argv: list[str] | None = None) -> int:
    overview = (package.__doc__ or '').split('\n\n')[0]
    parser = argparse.ArgumentParser(prog='python -m bench.load', description=overview)
    parser.add_argument('--quick', action='store_true', help='a small smoke run: 10 users, 100 grants')
    parser.add_argument('--out', type=Path, help='also write the table to this file')
    parser.add_argument('--bare-app', type=int, metavar='PORT', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare_app:
        bare_app(args.bare_app)
        return 0
    bench = Bench(QUICK if args.quick else FULL)
    try:
        bench.part('setup', tuple(ROWS), bench.setup)
        if bench.targets:
            bench.part('slack-driven jit', ('ack', 'grant', 'calls'), lambda: slack_parts(bench))
            bench.part('api-driven jit', ('idle', 'revoke1', 'memory', 'revoke2'), lambda: api_parts(bench))
            bench.part('decisions', ('decisions',), lambda: decisions(bench))
            bench.part('checks', ('rss', 'lost', 'twice'), lambda: finish(bench))
    finally:
        bench.close()
    text = table(bench)
    print(text)
    if args.out:
        args.out.write_text(text + '\n')
    return 0
