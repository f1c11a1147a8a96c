"""The load benchmark's run: its state (the rows measured so far, the notes, the processes it started) and
the environment every part runs in (a Redis, the local Slack, a webhook target per jit installation, and
``jit serve`` + ``jit worker`` started as the test harness starts them), torn down at the end.

A part is a function of the :class:`Bench` (``bench/load/acks.py`` and its neighbours); :meth:`Bench.part`
runs one so that whatever goes wrong there shows as ``n/a (why)`` in its rows and the run goes on.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench.load.common import SIGNING_SECRET, WEBHOOK_SECRET, Scale, Skip, loadavg, wait_for
from bench.load.observe import Watcher, notify_backlog

ROWS = ('ack', 'grant', 'revoke1', 'revoke2', 'idle', 'memory', 'calls', 'rss', 'decisions', 'lost', 'twice')


class Bench:
    """One run: what it measured so far, and what it started (stopped by :meth:`close`)."""

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
        self.idle_first: float | None = None  # the idle part's first grant alone, the burst rows' baseline
        self.rss_a: float | None = None  # `jit serve`'s RSS after the Slack-driven part
        self.rss_b: float | None = None  # and after the API-driven one

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

    # -- the end ------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop everything the run started and remove its files, whatever state the run ended in."""
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
