"""The ack row: how long ``jit serve`` takes to answer a signed ``/jit request``, every bench user at once,
beside a bare aiohttp app that only checks Slack's signature (the baseline), the two taking turns round by
round so that both see the same machine. The requests filed in the first round are the approve part's."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
import time
import urllib.request
from typing import Any

from bench.load.clients import Sent, post_at_once
from bench.load.common import SIGNING_SECRET, cpu_seconds, ms, pct
from bench.load.harness import Bench


def bare_app(port: int) -> None:
    """Answer ``POST /slack/events`` with 200 after checking Slack's signature, as cheaply as aiohttp can."""
    from aiohttp import web

    secret = os.environ['BENCH_SIGNING_SECRET'].encode()

    async def events(request: web.Request) -> web.Response:
        body = await request.read()
        stamp = request.headers.get('X-Slack-Request-Timestamp', '')
        signature = request.headers.get('X-Slack-Signature', '')
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
            return web.Response(status=401, text='stale')
        expected = 'v0=' + hmac.new(secret, b'v0:' + stamp.encode() + b':' + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return web.Response(status=401, text='bad signature')
        return web.Response(text='ok')

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text='ok')

    app = web.Application()
    app.router.add_post('/slack/events', events)
    app.router.add_get('/healthz', healthz)
    web.run_app(app, host='127.0.0.1', port=port, print=None, access_log=None)


def acks(bench: Bench, procs: Any, filed: dict[str, str]) -> None:
    """Signed ``/jit request`` from every bench user at once, rounds interleaved with the bare app's."""
    bench.need(40)
    from tests.support.processes import free_port, stop_process_group, wait_until

    port = free_port()
    bare = subprocess.Popen(
        [sys.executable, '-m', 'bench.load', '--bare-app', str(port)],
        env={**os.environ, 'BENCH_SIGNING_SECRET': SIGNING_SECRET},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=1) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    try:
        wait_until(healthy, timeout=20, what='the bare app')
        users = [f'U0B{i:03d}' for i in range(1, bench.scale.users + 1)]
        jit_url, bare_url = f'{procs.url}/slack/events', f'http://127.0.0.1:{port}/slack/events'
        mine: list[Sent] = []
        base: list[Sent] = []
        cpu = {'jit': 0.0, 'bare': 0.0}
        pids = {'jit': procs.web.pid if procs.web else None, 'bare': bare.pid}
        for rnd in range(bench.scale.rounds):
            for target in ('bare', 'jit') if rnd % 2 == 0 else ('jit', 'bare'):
                url = bare_url if target == 'bare' else jit_url
                items = []
                for i, user in enumerate(users):
                    out = bench.slack.driver._slash(user, f'request demo-app read 30m bench ack {rnd}-{i}', '/jit',
                                                    None)  # fmt: skip
                    items.append((url, out.body, out.headers))
                used = cpu_seconds(pids[target])
                answers = post_at_once(items)
                cpu[target] += cpu_seconds(pids[target]) - used
                (base if target == 'bare' else mine).extend(answers)
                if target == 'jit':
                    for user, answer in zip(users, answers, strict=True):
                        if answer.status == 200 and 'Filed' in answer.text and rnd == 0:
                            filed[user] = answer.text.split('`')[1]
                time.sleep(0.5)
    finally:
        stop_process_group(bare)
    bad = [a for a in mine if a.status != 200 or 'Filed' not in a.text]
    bad_base = [a for a in base if a.status != 200]
    p99, b99 = pct((a.elapsed for a in mine), 99), pct((a.elapsed for a in base), 99)
    over3 = sum(a.elapsed > 3.0 for a in mine)
    value = f'p99 {ms(p99)} (p50 {ms(pct((a.elapsed for a in mine), 50))}, max {ms(max(a.elapsed for a in mine))})'
    value += f'; {len(mine) - len(bad)}/{len(mine)} filed' + (f', {over3} over Slack\'s 3 s' if over3 else '')
    baseline = f'p99 {ms(b99)} (p50 {ms(pct((a.elapsed for a in base), 50))})'
    if bad_base:
        baseline += f'; {len(bad_base)} not 200'
    bench.put('ack', value, baseline, p99 <= 2 * b99 and not bad)
    size = len(users)

    def by_round(answers: list[Sent]) -> str:
        rounds = [[a.elapsed for a in answers[r * size : (r + 1) * size]] for r in range(bench.scale.rounds)]
        return ', '.join(f'{ms(pct(r, 50))}/{ms(pct(r, 99))}' for r in rounds)

    bench.note(f'ack p50/p99 by round, jit: {by_round(mine)}; bare app: {by_round(base)}')
    bench.note(f'ack CPU of the answering process per request: jit serve {ms(cpu["jit"] / len(mine))}, '
               f'bare app {ms(cpu["bare"] / len(base))}')  # fmt: skip
    if bad:
        bench.note(f'ack: {len(bad)} answers not "Filed", e.g. {bad[0].status} {bad[0].body[:200]!r}')
