"""Chaos fixtures: real jit processes, a real Redis, the local Slack and the webhook target, then breakage.

Adapted from ``tests/e2e/conftest.py``. Differences:

    redis_url      database 11 of this test process's own Redis server, flushed around each case
    slack, webhook shared by the whole chaos session (started once); ``webhook.reset()`` per case
    start_jit      a factory: ``start_jit(redis_url, **env)`` starts ``jit serve`` + ``jit worker`` against any Redis
    private_redis  a redis-server of the test's own (AOF on, no snapshots), which the test may SHUTDOWN and restart

Helpers (plain functions, imported by the tests): filing and approving a handful of requests, waiting
for every grant to be gone, and the ``CHAOS`` summary line with its figures.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field

import pytest
import redis

from bot.adapters.redis_store import RedisStore
from bot.core.model import RequestStatus
from bot.deps import SystemClock
from bot.sandbox.webhook_target import WebhookTarget
from tests.support.policies import DEMO_POLICY
from tests.support.processes import JitProcesses, launch_jit, wait_until
from tests.support.redis_server import RedisServer, flushed, own_redis_url
from tests.support.reports import (
    call_failed,
    pytest_runtest_makereport,  # noqa: F401 (the hook: failed tests show their logs)
)
from tests.support.slack import demo_webhook_env, local_slack, webhook_target

#: The chaos suite's own secrets (the end-to-end suite's are in tests/support/slack.py).
SIGNING_SECRET = 'chaos-signing-secret'
WEBHOOK_SECRET = 'chaos-webhook-secret'
CHAOS_REDIS_URL = own_redis_url(11)
ALEX, DANA, SAM, SEC = 'U0ALEX', 'U0DANA', 'U0SAM', 'U0SEC'
S = RequestStatus
ENDED = (S.REVOKED, S.FAILED)
#: demo-read alone: the end-to-end suite's self-extension and demo-deploy rule play no part in chaos.
POLICY = DEMO_POLICY


# -- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(name='redis_url')
def _redis_url():
    with flushed(CHAOS_REDIS_URL) as url:
        yield url


def make_store(url: str) -> RedisStore:
    return RedisStore(redis.Redis.from_url(url, decode_responses=True), clock=SystemClock())


@pytest.fixture(name='slack', scope='session')
def _slack():
    with local_slack(SIGNING_SECRET) as slack:
        yield slack


@pytest.fixture(name='webhook', scope='session')
def _webhook_session():
    with webhook_target(WEBHOOK_SECRET) as target:
        yield target


@pytest.fixture(autouse=True)
def _fresh_webhook(webhook):
    webhook.reset()
    yield
    webhook.reset()


@pytest.fixture(name='start_jit')
def _start_jit(tmp_path, slack, webhook, request):
    started: list[JitProcesses] = []

    def start(redis_url: str, **extra_env: str) -> JitProcesses:
        procs = launch_jit(tmp_path / f'jit-{len(started)}', slack=slack, signing_secret=SIGNING_SECRET,
                           redis_url=redis_url, policy=POLICY, JIT_AUDIT_CHANNEL='C0AUDIT', **demo_webhook_env(webhook),
                           **extra_env)  # fmt: skip
        started.append(procs)
        return procs

    yield start
    for procs in started:
        procs.stop()
    if call_failed(request) and os.environ.get('JIT_CHAOS_LOGS'):
        for procs in started:
            print(procs.dump_logs())


@pytest.fixture(name='private_redis')
def _private_redis(tmp_path):
    if shutil.which('redis-server') is None:
        pytest.skip('redis-server is not on PATH')
    data = tmp_path / 'redis-data'
    data.mkdir()
    server = RedisServer(data)
    server.start()
    yield server
    server.stop()


# -- helpers -----------------------------------------------------------------------------------------


def approval_copy(slack, user: str, request_id: str, timeout: float = 20):
    """The approval message in ``user``'s DM for ``request_id`` (waits for the notify job)."""
    return slack.workspace.wait_for_message(
        lambda m: m.channel == slack.workspace.dm_channel_id(user) and request_id in m.content and m.action_ids,
        timeout=timeout,
    )


def file_request(slack, user: str, seconds: int, why: str) -> str:
    reply = slack.driver.slash(user, f'request demo-app read {seconds}s {why}')
    assert reply.status == 200 and 'Filed' in (reply.text or ''), reply.body
    return (reply.text or '').split('`')[1]


def file_many(slack, count: int, seconds: int, why: str) -> list[str]:
    """``count`` requests, alternately by alex and dana, all waiting for sam's approval."""
    ids = [file_request(slack, (ALEX, DANA)[i % 2], seconds, f'{why} {i}') for i in range(count)]
    return ids


def approve_all(slack, ids: list[str], approver: str = SAM) -> None:
    for request_id in ids:
        reply = slack.driver.click(approver, approval_copy(slack, approver, request_id), 'jit.approve')
        assert reply.status == 200, reply.body


def wait_active(store: RedisStore, ids: list[str], timeout: float = 30) -> dict:
    def all_active():
        got = {i: store.get(i) for i in ids}
        return got if all(r is not None and r.status is S.ACTIVE for r in got.values()) else None

    return wait_until(all_active, timeout=timeout, interval=0.1, what=f'{ids} all active')


@dataclass
class ChaosReport:
    """What happened to each request, from the webhook target's calls and the store.

    ``twice``: granted again after it was revoked, so that access came back (never allowed).
    ``repeated``: the same grant sent again before any revoke - a retry after a call whose answer was
    lost (the worker died waiting); the provider contract makes it idempotent by request ID, so the
    access exists once. Reported, and each test says where it may happen.
    """

    case: str
    lost: list[str]
    twice: list[str]
    lateness: dict[str, float]
    states: dict[str, str]
    repeated: list[str] = field(default_factory=list)

    @property
    def worst(self) -> float | None:
        return max(self.lateness.values()) if self.lateness else None

    def line(self) -> str:
        worst = 'n/a' if self.worst is None else f'{self.worst * 1000:.0f} ms'
        return (
            f'CHAOS {self.case}: revokes lost={len(self.lost)}, worst lateness={worst}, '
            f'granted twice={len(self.twice)}, grant calls repeated={len(self.repeated)}'
        )

    def check(self) -> None:
        assert not self.lost, f'{self.case}: still granted or not ended: {self.lost} (states {self.states})'
        assert not self.twice, f'{self.case}: granted more than once: {self.twice}'


def settle(case: str, webhook: WebhookTarget, store: RedisStore, ids: list[str], *, timeout: float,
           expires: dict[str, float] | None = None) -> ChaosReport:  # fmt: skip
    """Wait (up to ``timeout``) until no grant of ``ids`` is held and each is revoked or failed; report.

    Lateness is the first successful revoke call's arrival at the target minus the ``expires_at`` jit
    stored (or the one given in ``expires``, read while the grant was active).
    """

    def done() -> bool:
        active = webhook.active
        return all(i not in active for i in ids) and all(
            (r := store.get(i)) is not None and r.status in ENDED for i in ids
        )

    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.25)
    active = webhook.active
    states: dict[str, str] = {}
    lost, twice, repeated, lateness = [], [], [], {}
    for request_id in ids:
        record = store.get(request_id)
        states[request_id] = str(record.status) if record else 'missing'
        if request_id in active or record is None or record.status not in ENDED:
            lost.append(request_id)
        grants = [c for c in webhook.grants_for(request_id) if c.ok]
        revokes = [c for c in webhook.revokes_for(request_id) if c.ok]
        if revokes and any(g.time > revokes[0].time for g in grants):
            twice.append(request_id)
        elif len(grants) > 1:
            repeated.append(request_id)
        expires_at = (expires or {}).get(request_id) or (record.expires_at if record else None)
        if revokes and expires_at:
            lateness[request_id] = revokes[0].time - expires_at
    report = ChaosReport(case, lost, twice, lateness, states, repeated)
    print('\n' + report.line())
    return report
