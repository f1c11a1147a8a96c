"""The load benchmark: real ``jit serve`` and ``jit worker`` processes, measured from outside, each figure beside a
baseline measured in the same run. Prints one Markdown table and the machine it ran on.

Run from the checkout: ``python -m bench.load [--quick] [--out FILE]`` (needs redis-server; starts one of its
own, the local Slack, the webhook target, and the jit processes, and stops them all). ``--quick`` is a small
smoke run (10 users, 100 grants). The full run takes about three minutes on two cores and stops itself
before eight: a part that fails or runs out of time shows ``n/a (why)`` and the rest goes on.

Everything is measured black-box, at the edges jit talks to:

- the Slack ack: the HTTP answer to a signed ``/jit request``, 50 users at once, five rounds, against a bare
  aiohttp app that only checks Slack's HMAC (same client, rounds interleaved so both see the same machine);
- approve to grant: 50 signed clicks at once, each click's sending to its grant call arriving at the webhook
  target, against empty RQ jobs put on ``jit worker``'s access queue (enqueue to start);
- revoke lateness: the first successful revoke call at the webhook target minus the ``expires_at`` jit stored,
  for grants filed through the pipeline API under an ``auto_approve`` rule with durations chosen so that they
  all end within about a second (filing is paced behind the grants, so each grant starts when it is filed);
- Redis bytes per active grant: ``MEMORY USAGE`` of every key, and ``used_memory``, before and after;
- Slack Web API calls per approved request, as the local Slack recorded them, from filing to the revoke;
- revokes lost and grants made twice, from the webhook target's record of every call.

Two jit installations run one after the other on databases of one Redis: the first is driven through Slack
(acks, clicks, calls), the second through the pipeline API (the revoke rows and memory), so the idle rows are
measured on an idle system. Each has a webhook target of its own (the second's reconciler would otherwise revoke
the first's grants as orphans). Notes under the table count what the workers logged, to read a slow row by.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

SIGNING_SECRET = 'bench-signing-secret'
WEBHOOK_SECRET = 'bench-webhook-secret'
ALEX, SAM = 'U0ALEX', 'U0SAM'
ACCESS_QUEUE_KEY = 'rq:queue:jit-access'


@dataclass(frozen=True)
class Scale:
    users: int
    rounds: int
    clicks: int
    grants: int
    idle_grants: int
    calibration: int
    calls_requests: int
    budget: float  # seconds for the whole run; parts that would not fit are skipped


FULL = Scale(users=50, rounds=5, clicks=50, grants=1000, idle_grants=20, calibration=40, calls_requests=2, budget=450)
QUICK = Scale(users=10, rounds=2, clicks=10, grants=100, idle_grants=6, calibration=20, calls_requests=1, budget=300)


class Skip(Exception):
    """A part that cannot be measured; its rows show ``n/a (message)``."""


# -- small helpers --------------------------------------------------------------------------------------


def pct(values: Iterable[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        raise Skip('no samples')
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def ms(seconds: float) -> str:
    return f'{seconds * 1000:,.0f} ms' if abs(seconds) >= 0.01 else f'{seconds * 1000:.1f} ms'


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds a process has used so far (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def with_children(pids: list[int]) -> list[int]:
    """``pids`` and every process they started (a worker's revoke and notify processes), from /proc."""
    parent: dict[int, int] = {}
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(')', 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, todo = set(pids), list(pids)
    while todo:
        pid = todo.pop()
        for child, ppid in parent.items():
            if ppid == pid and child not in found:
                found.add(child)
                todo.append(child)
    return sorted(found)


def wait_for(check: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll ``check`` until truthy; return its last value (falsy when the time ran out)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def machine() -> dict[str, str]:
    model = 'unknown'
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                model = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    return {'cpu': model, 'cores': str(os.cpu_count()), 'python': platform.python_version()}


def loadavg() -> str:
    try:
        return ' '.join(Path('/proc/loadavg').read_text().split()[:3])
    except OSError:
        return '?'


# -- the bare aiohttp app (the ack baseline) ----------------------------------------------------------------


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


# -- the HTTP client used for every timed Slack request -------------------------------------------------------


@dataclass
class Sent:
    sent: float  # time.time() just before the request left
    elapsed: float  # seconds until the whole answer was read
    status: int
    body: str

    @property
    def text(self) -> str:
        try:
            parsed = json.loads(self.body) if self.body.lstrip().startswith('{') else None
        except ValueError:
            parsed = None
        return str(parsed.get('text') or '') if isinstance(parsed, dict) else self.body


def post_at_once(items: list[tuple[str, bytes, dict[str, str]]]) -> list[Sent]:
    """POST every (url, body, headers) at the same moment (one event loop, one connection each); the answers."""
    import aiohttp

    async def run() -> list[Sent]:
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

            async def one(url: str, body: bytes, headers: dict[str, str]) -> Sent:
                sent, started = time.time(), time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as answer:
                        text = await answer.text(errors='replace')
                        return Sent(sent, time.perf_counter() - started, answer.status, text)
                except Exception as exc:  # a failed request is a data point, not a crash
                    return Sent(sent, time.perf_counter() - started, 0, repr(exc))

            return list(await asyncio.gather(*(one(*item) for item in items)))

    return asyncio.run(run())


class Api:
    """The pipeline API over urllib, as a pipeline would call it."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base, token

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {'Authorization': f'Bearer {self.token}'}
        if data is not None:
            headers['Content-Type'] = 'application/json'
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read() or b'{}')
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                return err.code, json.loads(raw or b'{}')
            except ValueError:
                return err.code, {'raw': raw[:200].decode(errors='replace')}
        except OSError as exc:
            return 0, {'error': repr(exc)}


# -- what the webhook target saw --------------------------------------------------------------------------


class Watcher:
    """Follows the webhook target's calls in a thread: the first successful grant and revoke of each request."""

    def __init__(self, webhook: Any) -> None:
        self.webhook = webhook
        self.grants: dict[str, float] = {}
        self.revokes: dict[str, float] = {}
        self._seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='bench-watcher', daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.poll()

    def poll(self) -> None:
        calls = self.webhook.calls
        for call in calls[self._seen :]:
            if call.ok and call.request_id:
                if call.action == 'grant':
                    self.grants.setdefault(call.request_id, call.time)
                elif call.action == 'revoke':
                    self.revokes.setdefault(call.request_id, call.time)
        self._seen = len(calls)


def verdicts(calls: list[Any], ids: Iterable[str]) -> tuple[list[str], list[str], list[str]]:
    """(revokes lost, granted again after a revoke, grant calls repeated before the revoke) for ``ids``."""
    by_id: dict[str, list[Any]] = {}
    for call in calls:
        if call.ok and call.request_id:
            by_id.setdefault(call.request_id, []).append(call)
    lost, twice, repeated = [], [], []
    for request_id in ids:
        mine = by_id.get(request_id, [])
        grants = [c for c in mine if c.action == 'grant']
        revokes = [c for c in mine if c.action == 'revoke']
        if not revokes or (grants and grants[-1].time > revokes[-1].time):
            lost.append(request_id)
        if revokes and any(g.time > revokes[0].time for g in grants):
            twice.append(request_id)
        elif len(grants) > 1:
            repeated.append(request_id)
    return lost, twice, repeated


# -- Redis memory ---------------------------------------------------------------------------------------


_ID = re.compile(r'r-[a-z2-9]{8}')
_HEX = re.compile(r'[0-9a-f]{16,}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}')


def notify_backlog(client: Any) -> int:
    """Audit events the notify follower has not shown in Slack yet (its cursor behind the stream's head)."""
    head = int(client.hget('jit:audit:head', 'seq') or 0)
    return max(0, head - int(client.get('jit:notify:cursor') or 0))


def key_memory(client: Any) -> tuple[int, Counter[str], int, int]:
    """(sum of MEMORY USAGE over every key of the database, the same by key shape, used_memory, stream entries)."""
    shapes: Counter[str] = Counter()
    entries = 0
    keys = [k.decode(errors='replace') if isinstance(k, bytes) else k for k in client.scan_iter(count=2000)]
    for start in range(0, len(keys), 500):
        batch = keys[start : start + 500]
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.memory_usage(key, samples=0)
            pipe.type(key)
        answers = pipe.execute()
        streams = []
        for key, size, kind in zip(batch, answers[0::2], answers[1::2], strict=True):
            shapes[_HEX.sub('<hex>', _ID.sub('<id>', key))] += size or 0
            if kind in (b'stream', 'stream'):
                streams.append(key)
        entries += sum(int(client.xlen(key)) for key in streams)
    return sum(shapes.values()), shapes, int(client.info('memory')['used_memory']), entries


# -- the run ----------------------------------------------------------------------------------------------


ROWS = ('ack', 'grant', 'revoke1', 'revoke2', 'idle', 'memory', 'calls', 'rss', 'decisions', 'lost', 'twice')


class Bench:
    watch: Watcher  # the current installation's (set by new_target)
    webhook: Any

    def __init__(self, scale: Scale) -> None:
        self.scale = scale
        self.t0 = time.monotonic()
        self.rows: dict[str, tuple[str, str, str, str, str]] = {}
        self.notes: list[str] = []
        self.tmp = Path(tempfile.mkdtemp(prefix='jit-bench-load-'))
        self.redis: Any = None
        self.slack: Any = None
        self.started: list[Any] = []  # JitProcesses, stopped at the end
        self.ended_ids: list[str] = []  # every grant that should have been revoked by the end
        self.web_pids: dict[str, int] = {}
        self.worker_logs: list[tuple[str, Path]] = []
        self.targets: list[tuple[Any, Watcher]] = []  # one webhook target per installation
        self.redis_version = '?'
        self.load_before = loadavg()

    # -- rows -------------------------------------------------------------------------------------------

    def label(self, key: str) -> tuple[str, str]:
        s = self.scale
        return {
            'ack': (f'`/jit request` ack latency, {s.users} users at once x{s.rounds} rounds, p99', '≤ 2x baseline'),
            'grant': (f'Approve → webhook grant, {s.clicks} clicks at once, p95', '≤ 150 ms'),
            'revoke1': (f'revoke lateness, {s.grants:,} grants ending within ~1 s, one `jit worker`, p99 / max',
                        '≤ 1.5 s'),
            'revoke2': ('the same with two `jit worker` processes, p99 / max', '≤ 1.5 s'),
            'idle': (f'revoke lateness on an idle system, max over {s.idle_grants} grants', '≤ 0.1 s'),
            'memory': ('Redis bytes per active grant (request, indexes, jobs, audit events)', '≤ 2 KB'),
            'calls': ('Slack Web API calls per approved request (filing → end of grant)', '≤ 8'),
            'rss': ('`jit serve` RSS after the run', 'keep'),
            'decisions': ('policy decisions per second (bench/decisions.py: 1,000 rules, 10,000 members)', 'keep'),
            'lost': ('revokes lost (checked at the webhook target)', '0'),
            'twice': ('grants made twice (checked at the webhook target)', '0'),
        }[key]  # fmt: skip

    def put(self, key: str, value: str, baseline: str = '', ok: bool | None = None) -> None:
        figure, target = self.label(key)
        self.rows[key] = (figure, value, baseline or '—', target, {True: 'yes', False: '**no**', None: '—'}[ok])

    def na(self, keys: Iterable[str], why: str) -> None:
        for key in keys:
            if key not in self.rows:
                self.put(key, f'n/a ({why})')

    def part(self, name: str, keys: tuple[str, ...], step: Callable[[], None]) -> None:
        """Run one part; whatever goes wrong there becomes ``n/a (why)`` in its rows, and the run goes on."""
        started = time.monotonic()
        try:
            step()
        except Skip as exc:
            self.na(keys, str(exc))
        except Exception as exc:  # one broken part must not take the table with it
            self.na(keys, f'{type(exc).__name__}: {str(exc)[:160]}')
            traceback.print_exc(file=sys.stderr)
        finally:
            print(f'[bench] {name}: {time.monotonic() - started:.1f} s (elapsed {self.elapsed():.0f} s)',
                  file=sys.stderr)  # fmt: skip

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def need(self, seconds: float) -> None:
        if self.scale.budget - self.elapsed() < seconds:
            raise Skip(f'out of time: needs ~{seconds:.0f} s, {max(0, self.scale.budget - self.elapsed()):.0f} s left')

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f'[bench] {text}', file=sys.stderr)

    # -- setup --------------------------------------------------------------------------------------------

    def policy(self) -> str:
        bench_users = ', '.join(f'b{i:03d}@example.com' for i in range(1, self.scale.users + 1))
        return f"""\
groups:
  devops: [alex@example.com, dana@example.com, sam@example.com]
  leads: [sam@example.com]
  security: [sec@example.com]
  bench: [{bench_users}]
admins: [group:security]
resources:
  demo-app:
    description: the demo app
    provider: webhook
    settings: {{url: env:DEMO_WEBHOOK_URL, secret: env:DEMO_WEBHOOK_SECRET, reconcile: true}}
    roles: [read, deploy]
requests:
  - name: demo-read
    resources: [demo-app]
    roles: [read]
    requesters: [group:devops, group:bench]
    approvers: [group:leads, group:security]
    approvals: 1
    timeout: 2h
    default_duration: 30m
    require_reason: true
  - name: bench-pipeline
    resources: [demo-app]
    roles: [deploy]
    requesters: [pipeline:bench]
    trigger: pipeline
    auto_approve: true
    timeout: 2h
"""

    def setup(self) -> None:
        from bot.sandbox.local_slack import LocalSlack
        from bot.sandbox.workspace import User, seed_workspace
        from tests.support.redis_server import RedisServer

        (self.tmp / 'redis').mkdir()
        self.redis = RedisServer(self.tmp / 'redis')
        self.redis.start()
        self.redis_version = str(self.redis.client().info('server')['redis_version'])
        workspace = seed_workspace()
        for i in range(1, self.scale.users + 1):
            workspace.add_user(User(f'U0B{i:03d}', f'b{i:03d}', f'Bench User {i}', f'b{i:03d}@example.com', 'T0JIT'))
        self.slack = LocalSlack(workspace=workspace, signing_secret=SIGNING_SECRET)
        self.slack.start_in_thread()
        self.new_target()

    def new_target(self) -> None:
        """A webhook target of the next installation's own: its reconciler must not see the last one's grants."""
        from bot.sandbox.webhook_target import WebhookTarget

        self.webhook = WebhookTarget(WEBHOOK_SECRET)
        self.webhook.start_in_thread()
        self.watch = Watcher(self.webhook)
        self.watch.start()
        self.targets.append((self.webhook, self.watch))

    def start_jit(self, name: str, db: int, **extra: str) -> Any:
        """``jit serve`` + ``jit worker`` as the harness starts them, with jit's own defaults otherwise."""
        from tests.support.processes import JitProcesses, free_port

        if self.started:
            self.new_target()
        root = self.tmp / name
        (root / 'policies').mkdir(parents=True)
        (root / 'logs').mkdir()
        (root / 'policies' / 'policy.yaml').write_text(self.policy())
        env = {
            'SLACK_BOT_TOKEN': self.slack.bot_token, 'SLACK_SIGNING_SECRET': SIGNING_SECRET,
            'SLACK_API_URL': self.slack.api_url, 'REDIS_URL': self.redis.url_for(db),
            'JIT_POLICY_DIR': str(root / 'policies'), 'PORT': str(free_port()), 'JIT_HOST': '127.0.0.1',
            'JIT_LOG_FORMAT': 'json', 'JIT_AUDIT_CHANNEL': 'C0AUDIT', 'DEMO_WEBHOOK_URL': self.webhook.url,
            'DEMO_WEBHOOK_SECRET': WEBHOOK_SECRET, 'JIT_REQUESTS_PER_HOUR': '0', 'JIT_MAX_OPEN_REQUESTS': '0', **extra,
        }  # fmt: skip
        procs = JitProcesses(env, root / 'logs')
        self.started.append(procs)
        procs.start_web()
        procs.start_worker()
        self.slack.app_url = f'{procs.url}/slack/events'
        self.web_pids[name] = procs.web.pid if procs.web else 0
        self.worker_logs.append((name, root / 'logs'))
        return procs

    def client(self, db: int) -> Any:
        import redis

        return redis.Redis.from_url(self.redis.url_for(db))

    def drain_notify(self, db: int, timeout: float) -> int:
        """Wait (at most ``timeout``) for the notify queue to empty; return what is left."""
        client = self.client(db)
        wait_for(lambda: notify_backlog(client) == 0, timeout, 0.2)
        return notify_backlog(client)

    # -- part 1: through Slack ----------------------------------------------------------------------------

    def slack_parts(self) -> None:
        self.need(60)
        procs = self.start_jit('slack', db=1)
        try:
            filed: dict[str, str] = {}
            self.part('ack', ('ack',), lambda: self.acks(procs, filed))
            self.part('approve to grant', ('grant',), lambda: self.approve_to_grant(filed))
            self.part('slack calls', ('calls',), self.slack_calls)
            self.rss_a = rss_mb(procs.web.pid if procs.web else None)
        finally:
            procs.stop()

    def acks(self, procs: Any, filed: dict[str, str]) -> None:
        """Signed ``/jit request`` from every bench user at once, rounds interleaved with the bare app's."""
        self.need(40)
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
            users = [f'U0B{i:03d}' for i in range(1, self.scale.users + 1)]
            jit_url, bare_url = f'{procs.url}/slack/events', f'http://127.0.0.1:{port}/slack/events'
            mine: list[Sent] = []
            base: list[Sent] = []
            cpu = {'jit': 0.0, 'bare': 0.0}
            pids = {'jit': procs.web.pid if procs.web else None, 'bare': bare.pid}
            for rnd in range(self.scale.rounds):
                for target in ('bare', 'jit') if rnd % 2 == 0 else ('jit', 'bare'):
                    url = bare_url if target == 'bare' else jit_url
                    items = []
                    for i, user in enumerate(users):
                        out = self.slack.driver._slash(user, f'request demo-app read 30m bench ack {rnd}-{i}', '/jit',
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
        self.put('ack', value, baseline, p99 <= 2 * b99 and not bad)
        size = len(users)

        def by_round(answers: list[Sent]) -> str:
            rounds = [[a.elapsed for a in answers[r * size : (r + 1) * size]] for r in range(self.scale.rounds)]
            return ', '.join(f'{ms(pct(r, 50))}/{ms(pct(r, 99))}' for r in rounds)

        self.note(f'ack p50/p99 by round, jit: {by_round(mine)}; bare app: {by_round(base)}')
        self.note(f'ack CPU of the answering process per request: jit serve {ms(cpu["jit"] / len(mine))}, '
                  f'bare app {ms(cpu["bare"] / len(base))}')  # fmt: skip
        if bad:
            self.note(f'ack: {len(bad)} answers not "Filed", e.g. {bad[0].status} {bad[0].body[:200]!r}')

    def approve_to_grant(self, filed: dict[str, str]) -> None:
        """``clicks`` approvals sent at once by sam; each click to the grant call's arrival at the target."""
        self.need(60)
        from rq import Queue
        from rq.job import Job

        ids = list(filed.values())[: self.scale.clicks]
        if len(ids) < self.scale.clicks:
            raise Skip(f'only {len(ids)} requests were filed by the ack part')
        dm = self.slack.workspace.dm_channel_id(SAM)

        def copies() -> dict[str, Any] | None:
            found = {}
            for message in self.slack.workspace.messages(dm):
                for request_id in ids:
                    if request_id in message.content and 'jit.approve' in message.action_ids:
                        found[request_id] = message
            return found if len(found) == len(ids) else None

        messages = wait_for(copies, 90, 0.5)
        if not messages:
            raise Skip("the approval messages did not all reach sam's DM within 90 s")
        backlog = self.drain_notify(1, 45)
        client = self.client(1)

        # The baseline: empty jobs on the worker's access queue, all at once, enqueue to start (RQ's record).
        queue = Queue('jit-access', connection=client)
        enqueued: dict[str, float] = {}
        for i in range(self.scale.clicks):
            job_id = f'bench-empty-{i}'
            enqueued[job_id] = time.time()
            queue.enqueue('time.time', job_id=job_id, result_ttl=60, failure_ttl=60)

        def started() -> list[Any] | None:
            jobs = Job.fetch_many(list(enqueued), connection=client)
            return jobs if all(j is not None and j.started_at for j in jobs) else None

        jobs = wait_for(started, 30, 0.1)
        if not jobs:
            raise Skip('the empty RQ jobs did not start within 30 s')
        waits = [self._ts(j.started_at) - enqueued[j.id] for j in jobs]
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
                alone.append(self._ts(job.started_at) - at)
            time.sleep(0.1)

        items = []
        for request_id in ids:
            out = self.slack.driver._click(SAM, messages[request_id], 'jit.approve', None, True)
            items.append((self.slack.app_url, out.body, out.headers))
        answers = post_at_once(items)
        wait_for(lambda: all(i in self.watch.grants for i in ids), 60, 0.1)
        acks = [a.elapsed for a in answers]
        last = max([self.watch.grants[i] for i in ids if i in self.watch.grants], default=float('nan'))
        self.note(f'clicks: ack p50 {ms(pct(acks, 50))}, p95 {ms(pct(acks, 95))}; the last grant call arrived '
                  f'{ms(last - min(a.sent for a in answers))} after the first click')  # fmt: skip
        delays = [self.watch.grants[i] - a.sent for i, a in zip(ids, answers, strict=True) if i in self.watch.grants]
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
        self.put('grant', value, baseline, p95 <= 0.150 and not missing)
        if backlog:
            self.note(f'grant: {backlog} audit events not yet shown in Slack when the clicks were sent')

    @staticmethod
    def _ts(when: Any) -> float:
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return float(when.timestamp())

    def slack_calls(self) -> None:
        """alex files, sam approves, the grant runs 10 s and ends: the local Slack's calls, per request."""
        self.need(50)
        left = self.drain_notify(1, 60)
        wait_for(lambda: self._quiet(1.5), 30, 0.2)
        if left:
            self.note(
                f'calls: {left} audit events were not yet shown in Slack at the start (their calls may be counted)'
            )
        first = len(self.slack.calls)
        ids = []
        for k in range(self.scale.calls_requests):
            reply = self.slack.driver.slash(ALEX, f'request demo-app read 10s bench calls {k}')
            if reply.status != 200 or 'Filed' not in (reply.text or ''):
                raise Skip(f'alex could not file: {reply.status} {reply.body[:120]!r}')
            ids.append((reply.text or '').split('`')[1])
        dm = self.slack.workspace.dm_channel_id(SAM)
        for request_id in ids:
            copy = self.slack.workspace.wait_for_message(
                lambda m, r=request_id: m.channel == dm and r in m.content and 'jit.approve' in m.action_ids,
                timeout=30)  # fmt: skip
            self.slack.driver.click(SAM, copy, 'jit.approve')
        if not wait_for(lambda: all(i in self.watch.revokes for i in ids), 60, 0.2):
            raise Skip('the grants were not revoked within 60 s')
        self.ended_ids.extend(ids)
        self.drain_notify(1, 30)
        wait_for(lambda: self._quiet(2.0), 30, 0.2)
        calls = self.slack.calls[first:]
        methods = Counter(c.method for c in calls)
        per = len(calls) / len(ids)
        breakdown = ', '.join(f'{m} {n / len(ids):g}' for m, n in methods.most_common())
        self.put('calls', f'{per:g} ({breakdown})', '', per <= 8)

        def where(call: Any) -> str:
            channel = str((call.params or {}).get('channel') or '')
            return 'DM' if channel.startswith('D') else '#audit' if channel == 'C0AUDIT' else channel or '-'

        detail = Counter(f'{c.method} {where(c)}' for c in calls)
        for call in calls:  # the sequence, for reading the row (stderr only)
            text = str((call.params or {}).get('text') or '')[:70].replace('\n', ' ')
            print(f'[bench] call {call.method} {where(call)} {text!r}', file=sys.stderr)
        self.note('calls per approved request by method and channel: '
                  + ', '.join(f'{k} {v / len(ids):g}' for k, v in detail.most_common()))  # fmt: skip

    def _quiet(self, seconds: float) -> bool:
        calls = self.slack.calls
        return not calls or time.time() - calls[-1].time >= seconds

    # -- part 2: through the pipeline API -------------------------------------------------------------------

    def api_parts(self) -> None:
        self.need(60)
        from bot.api.tokens import hash_token, new_token

        token = new_token()
        procs = self.start_jit('api', db=2, JIT_API_TOKENS=f'bench:{hash_token(token)}')
        api = Api(procs.url, token)
        try:
            self.part('idle revokes', ('idle',), lambda: self.idle(api))
            self.part(
                'burst, one worker', ('revoke1', 'memory'), lambda: self.burst(api, 'revoke1', measure_memory=True)
            )

            def second_worker() -> None:
                self.need(60)
                from tests.support.processes import JitProcesses

                (procs.logs / 'second').mkdir()
                extra = JitProcesses(dict(procs.env), procs.logs / 'second')
                self.started.append(extra)
                self.worker_logs.append(('api', procs.logs / 'second'))
                extra.start_worker()
                left = self.drain_notify(2, min(60.0, self.scale.budget - self.elapsed() - 120))
                if left:
                    self.note(f'revoke2: {left} audit events not yet shown in Slack at the start')
                self.burst(api, 'revoke2', measure_memory=False)

            self.part('burst, two workers', ('revoke2',), second_worker)
            self.rss_b = rss_mb(procs.web.pid if procs.web else None)
        finally:
            for started in self.started:
                started.stop()

    def file(self, api: Api, duration: int, why: str) -> str:
        status, body = api.call('POST', '/api/v1/requests', {'resource': 'demo-app', 'role': 'deploy',
                                                              'duration': duration, 'reason': why})  # fmt: skip
        if status != 201:
            raise Skip(f'filing answered {status}: {str(body)[:120]}')
        return str(body['id'])

    def expiries(self, ids: list[str]) -> dict[str, float]:
        """Each request's ``expires_at`` as jit stored it."""
        import redis

        from bot.adapters.redis_store import RedisStore
        from bot.deps import SystemClock

        store = RedisStore(redis.Redis.from_url(self.redis.url_for(2), decode_responses=True), clock=SystemClock())
        found: dict[str, float] = {}
        for start in range(0, len(ids), 200):
            for record in store.get_many(ids[start : start + 200]):
                if record is not None and record.expires_at:
                    found[record.id] = float(record.expires_at)
        return found

    def idle(self, api: Api) -> None:
        """One grant at a time, each ending alone: how late is a revoke when nothing else happens."""
        n = self.scale.idle_grants
        duration = max(10, int(n * 0.5) + 3)
        self.need(duration + n * 0.5 + 20)
        ids = []
        for k in range(n):
            ids.append(self.file(api, duration, f'bench idle {k}'))
            time.sleep(0.5)
        wait_for(lambda: all(i in self.watch.grants for i in ids), 20, 0.1)
        expires = self.expiries(ids)
        wait_for(lambda: all(i in self.watch.revokes for i in ids), duration + 30, 0.2)
        self.ended_ids.extend(ids)
        late = [self.watch.revokes[i] - expires[i] for i in ids if i in self.watch.revokes and i in expires]
        if not late:
            raise Skip('no grant was revoked in time to measure')
        missing = len(ids) - len(late)
        value = f'max {ms(max(late))} (median {ms(statistics.median(late))}, min {ms(min(late))})'
        if missing:
            value += f'; {missing} not measured'
        self.put('idle', value, f'the first grant alone: {ms(late[0])}', max(late) <= 0.1 and not missing)
        self.idle_first = late[0]

    def calibrate(self, api: Api, count: int, backlog: int) -> tuple[float, float]:
        """Grants per second and the filing-to-grant lag, paced as the burst is; the grants are released after."""
        filed = self.file_paced(api, count, lambda now: 3600, backlog, 'bench calibration')
        wait_for(lambda: all(i in self.watch.grants for i in filed), 30, 0.05)
        granted = [i for i in filed if i in self.watch.grants]
        if len(granted) < count // 2:
            raise Skip(f'calibration: only {len(granted)} of {count} granted within 30 s')
        span = max(self.watch.grants[i] for i in granted) - min(filed[i] for i in granted)
        lag = statistics.median(self.watch.grants[i] - filed[i] for i in granted)
        for request_id in filed:
            api.call('POST', f'/api/v1/requests/{request_id}/release')
        wait_for(lambda: all(i in self.watch.revokes for i in filed), 30, 0.1)
        self.ended_ids.extend(filed)
        return len(granted) / max(span, 0.001), lag

    def file_paced(self, api: Api, count: int, duration_for: Callable[[float], int], backlog: int, why: str,
                   lag: list[float] | None = None) -> dict[str, float]:  # fmt: skip
        """File ``count`` requests from a few threads, never more than ``backlog`` filed and not yet granted (so
        that each grant starts about when it is filed); ``{request id: time it was filed}``."""
        watch = self.watch
        filed: dict[str, float] = {}
        errors: list[str] = []
        lock = threading.Lock()
        state = {'issued': 0}
        granted_before = len(watch.grants)

        def ours_granted() -> int:
            return len(watch.grants) - granted_before

        def run() -> None:
            while len(errors) < 10:
                with lock:
                    if state['issued'] >= count:
                        return
                    state['issued'] += 1
                give_up = time.monotonic() + 30
                while state['issued'] - ours_granted() > backlog and time.monotonic() < give_up:
                    time.sleep(0.002)
                at = time.time()
                status, body = api.call('POST', '/api/v1/requests', {
                    'resource': 'demo-app', 'role': 'deploy', 'duration': duration_for(at), 'reason': why})  # fmt: skip
                with lock:
                    if status == 201:
                        filed[str(body['id'])] = at
                    else:
                        errors.append(f'{status} {str(body)[:120]}')
                        state['issued'] -= 1

        threads = [threading.Thread(target=run, daemon=True) for _ in range(6)]
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            time.sleep(0.2)
            if lag is not None:
                with lock:
                    recent = [watch.grants[i] - t for i, t in list(filed.items())[-40:] if i in watch.grants]
                if len(recent) >= 5:
                    lag[0] = statistics.median(recent)
        if errors:
            raise Skip(f'{len(errors)} filings failed, e.g. {errors[0]}')
        return filed

    def burst(self, api: Api, row: str, *, measure_memory: bool) -> None:
        """``grants`` grants filed paced behind the worker, with durations that make them all end at one moment."""
        n = self.scale.grants
        self.need(40 + n / 25)
        backlog = 8
        rate, lag0 = self.calibrate(api, self.scale.calibration, backlog)
        self.drain_notify(2, 20)
        client = self.client(2)
        before = key_memory(client) if measure_memory else None
        # Filing, then time for the notifications it queued to drain (so the grants all end on a settled worker,
        # as grants made over a longer time would), then the end.
        filing_time = n / (0.6 * rate)
        self.need(filing_time + n * 0.02 + 50)
        end = time.time() + max(14.0, filing_time + 8.0 + n * 0.02)
        lag = [lag0]
        clamped = Counter[str]()

        def duration_for(now: float) -> int:
            seconds = round(end - now - lag[0])
            if seconds < 10:
                clamped['short'] += 1
            return max(10, seconds)

        workers = with_children(
            [p.worker.pid for p in self.started if p.worker is not None and p.worker.poll() is None]
        )
        worker_cpu = sum(cpu_seconds(pid) for pid in workers)
        filed = self.file_paced(api, n, duration_for, backlog, f'bench {row}', lag)
        ids = list(filed)
        filed_span = max(filed.values()) - min(filed.values())
        wait_for(lambda: all(i in self.watch.grants for i in ids), max(1.0, end - time.time() - 3), 0.05)
        all_active = all(i in self.watch.grants for i in ids)
        after = None
        wait_for(lambda: notify_backlog(client) == 0, max(0.0, end - time.time() - 4), 0.2)
        queued = notify_backlog(client)
        if measure_memory and time.time() < end - 1.5 and all_active:
            after = key_memory(client)
        expires = self.expiries(ids)
        wait_for(lambda: all(i in self.watch.revokes for i in ids), max(5.0, end - time.time()) + 60 + n / 20, 0.25)
        self.ended_ids.extend(ids)
        worker_cpu = sum(cpu_seconds(pid) for pid in workers) - worker_cpu
        late = [self.watch.revokes[i] - expires[i] for i in ids if i in self.watch.revokes and i in expires]
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
        baseline = f'one grant alone: {ms(self.idle_first)}' if hasattr(self, 'idle_first') else ''
        self.put(row, value, baseline, pct(late, 99) <= 1.5 and max(late) <= 1.5 and not missing)
        arrivals = sorted(self.watch.revokes[i] for i in ids if i in self.watch.revokes)
        self.note(f'{row}: revokes arrived over {arrivals[-1] - arrivals[0]:.2f} s '
                  f'({len(arrivals) / max(arrivals[-1] - arrivals[0], 0.001):.0f}/s); done by: '
                  + ', '.join(f'{k} x{v}' for k, v in self.revoked_by(set(ids)).most_common()))  # fmt: skip
        self.note(f'{row}: calibration {rate:.0f} grants/s, lag {ms(lag0)}; worker CPU {ms(worker_cpu / n)} per '
                  f'grant (grant, revoke, notifications); last of the revokes arrived '
                  f'{ms(max(self.watch.revokes[i] for i in ids if i in self.watch.revokes) - ends[-1])} after the '
                  f'last expires_at')  # fmt: skip
        if measure_memory:
            if before is None or after is None:
                self.put('memory', 'n/a (the grants were not all active in time to measure before they ended)')
                return
            keys = (after[0] - before[0]) / n
            used = (after[2] - before[2]) / n
            shapes = Counter({k: (after[1][k] - before[1].get(k, 0)) / n for k in after[1]})
            top = ', '.join(f'`{k}` {v:,.0f}' for k, v in shapes.most_common(6) if v > 0)
            value = f'{keys:,.0f} B by MEMORY USAGE of every key; {used:,.0f} B by used_memory (whole server, noisy)'
            if queued:
                value += f' ({queued} audit events not yet shown in Slack)'
            self.put('memory', value, '', keys <= 2048)
            self.note(f'memory per grant by key shape: {top}; stream entries per grant: {(after[3] - before[3]) / n:g}')

    def revoked_by(self, ids: set[str]) -> Counter[str]:
        """Which worker process (log file) and which path (revoker thread, job, sweeper) revoked ``ids``."""
        found: Counter[str] = Counter()
        for _, folder in self.worker_logs:
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

    # -- the rest -----------------------------------------------------------------------------------------

    def decisions(self) -> None:
        self.need(20)
        done = subprocess.run([sys.executable, '-m', 'bench.decisions'], capture_output=True, text=True, timeout=120,
                              check=True)  # fmt: skip
        last = [line for line in done.stdout.splitlines() if line.startswith('|')][-1]
        cells = [c.strip() for c in last.strip('|').split('|')]
        self.put('decisions', f'{cells[-1]}/s (load {cells[-2]})')

    def finish(self) -> None:
        calls, active = [], set()
        for webhook, watch in self.targets:
            watch.poll()
            calls += webhook.calls
            active |= set(webhook.active)
        if 'rss' not in self.rows:
            parts = []
            for name, value in (('Slack-driven', getattr(self, 'rss_a', None)),
                                ('API-driven', getattr(self, 'rss_b', None))):  # fmt: skip
                if value is not None:
                    parts.append(f'{value:.0f} MB ({name})')
            self.put('rss', '; '.join(parts) if parts else 'n/a (no web process ran)')
        if self.ended_ids:
            lost, twice, repeated = verdicts(calls, self.ended_ids)
            still = active & set(self.ended_ids)
            lost = sorted(set(lost) | still)
            self.put('lost', f'{len(lost)} of {len(self.ended_ids):,}' + (f' (e.g. {lost[:3]})' if lost else ''), '',
                     not lost)  # fmt: skip
            self.put('twice', f'{len(twice)} granted again after the revoke; {len(repeated)} grant calls repeated '
                              f'before it', '', not twice and not repeated)  # fmt: skip
        self.log_evidence()

    def log_evidence(self) -> None:
        """What the workers logged, counted per installation: jit's own events (revokes, warnings) and how long
        RQ took per job function (for reading a slow row)."""
        done = re.compile(r'Successfully completed (?:workers\.jobs\.)?(\w+)\(.*\) job in (\d+):(\d+):([\d.]+)s')
        for name in dict.fromkeys(n for n, _ in self.worker_logs):
            events: Counter[str] = Counter()
            jobs: dict[str, list[float]] = {}
            for _, folder in (w for w in self.worker_logs if w[0] == name):
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
                self.note(f'{name} worker, RQ job run times: ' + '; '.join(
                    f'{job} x{len(t)} median {ms(statistics.median(t))}, max {ms(max(t))}'
                    for job, t in sorted(jobs.items(), key=lambda kv: -len(kv[1]))))  # fmt: skip
            if events:
                self.note(f'{name} worker, log lines: ' + '; '.join(f'{k} x{v}' for k, v in events.most_common(12)))

    def table(self) -> str:
        info = machine()
        lines = ['| figure | measured | baseline, same run | target | meets |', '|---|---|---|---|---|']
        for key in ROWS:
            figure, target = self.label(key)
            row = self.rows.get(key, (figure, 'n/a (not run)', '—', target, '—'))
            lines.append('| ' + ' | '.join(row) + ' |')
        lines += [
            '',
            f'Machine: {info["cpu"]}, {info["cores"]} cores; Python {info["python"]}; Redis {self.redis_version}. '
            f'Load average {self.load_before} at the start, {loadavg()} at the end. '
            f'Elapsed: {self.elapsed():.0f} s' + (' (--quick)' if self.scale is QUICK else '') + '.',
        ]
        if self.notes:
            lines += ['', 'Notes:', *(f'- {n}' for n in self.notes)]
        return '\n'.join(lines)

    def close(self) -> None:
        for procs in self.started:
            with contextlib.suppress(Exception):  # stopping what is left; nothing to report
                procs.stop()
        for _, watch in self.targets:
            watch.stop()
        for server in (self.slack, *(webhook for webhook, _ in self.targets)):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop_thread()
        if self.redis is not None:
            self.redis.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m bench.load', description=__doc__.split('\n\n')[0])
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
            bench.part('slack-driven jit', ('ack', 'grant', 'calls'), bench.slack_parts)
            bench.part('api-driven jit', ('idle', 'revoke1', 'memory', 'revoke2'), bench.api_parts)
            bench.part('decisions', ('decisions',), bench.decisions)
            bench.part('checks', ('rss', 'lost', 'twice'), bench.finish)
    finally:
        bench.close()
    table = bench.table()
    print(table)
    if args.out:
        args.out.write_text(table + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
