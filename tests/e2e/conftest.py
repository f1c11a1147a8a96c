"""End-to-end fixtures: a real Redis, the local Slack, a real webhook receiver, real jit processes.

Fixtures:
    redis_url      database 13 of this test process's own Redis server (``tests/support/redis_server.py``), flushed
    transport      "http" (signed requests to /slack/events), or also "socket" (Socket Mode envelopes)
                   for tests marked ``both_transports``: the same scenario runs over both (``socket_only``: just
                   Socket Mode)
    slack          the local Slack (``bot.sandbox``) on a free port, seeded workspace
    webhook        a real HTTP webhook receiver checking ``X-JIT-Signature``
    jit            ``jit serve`` + ``jit worker`` subprocesses wired to all three, with ``E2E_POLICY``
                   (``tests/support/policies.py``); its logs are printed when the test failed
    store          a ``RedisStore`` on the same database, to look at what jit stored

The signing and webhook secrets are ``tests/support/slack.py``'s (the fuzz suite uses the same).
"""

from __future__ import annotations

import pytest
import redis

from bot.adapters.redis_store import RedisStore
from bot.deps import SystemClock
from tests.support.policies import E2E_POLICY
from tests.support.processes import launch_jit
from tests.support.redis_server import flushed, own_redis_url
from tests.support.reports import (
    pytest_runtest_makereport,  # noqa: F401 (the hook: failed tests show their logs)
    stop_and_show_logs,
)
from tests.support.slack import SIGNING_SECRET, WEBHOOK_SECRET, demo_webhook_env, local_slack, webhook_target


@pytest.fixture(name='redis_url')
def _redis_url():
    with flushed(own_redis_url(13)) as url:
        yield url


@pytest.fixture(name='store')
def _store(redis_url):
    return RedisStore(redis.Redis.from_url(redis_url, decode_responses=True), clock=SystemClock())


def pytest_generate_tests(metafunc):
    if 'transport' in metafunc.fixturenames:
        marked = metafunc.definition.get_closest_marker
        transports = (
            ['socket'] if marked('socket_only') else ['http', 'socket'] if marked('both_transports') else ['http']
        )
        metafunc.parametrize('transport', transports)


@pytest.fixture(name='slack')
def _slack(transport):
    with local_slack(SIGNING_SECRET, transport=transport) as slack:
        yield slack


@pytest.fixture(name='webhook')
def _webhook():
    with webhook_target(WEBHOOK_SECRET) as target:
        yield target


@pytest.fixture(name='jit')
def _jit(tmp_path, redis_url, slack, webhook, request):
    procs = launch_jit(tmp_path, slack=slack, signing_secret=SIGNING_SECRET, redis_url=redis_url, policy=E2E_POLICY,
                       JIT_AUDIT_CHANNEL='C0AUDIT', JIT_REMINDER_AFTER='3', **demo_webhook_env(webhook))  # fmt: skip
    yield procs
    stop_and_show_logs(procs, request)
