"""Fuzz fixtures: a real ``jit serve`` + ``jit worker`` to throw generated requests at.

Adapted from ``tests/e2e/conftest.py`` (same policy, same local Slack and webhook target). Differences:

    fuzz_redis_url  database 7 of this test process's own Redis server, flushed before and after each test
    edge            fresh processes per test (so one test's filed requests cannot move the state another
                    test watches), plus an :class:`~tests.fuzz.edge.EdgeClient` that records the figures
"""

from __future__ import annotations

import pytest
import redis

from bot.sandbox.local_slack import LocalSlack
from bot.sandbox.webhook_target import WebhookTarget
from bot.sandbox.workspace import seed_workspace
from tests.e2e.conftest import POLICY, SIGNING_SECRET, WEBHOOK_SECRET
from tests.fuzz.edge import FUZZ_REDIS_URL, Edge, EdgeClient
from tests.support.processes import launch_jit


@pytest.fixture(name='fuzz_redis_url')
def _fuzz_redis_url():
    client = redis.Redis.from_url(FUZZ_REDIS_URL)
    client.flushdb()
    yield FUZZ_REDIS_URL
    client.flushdb()


@pytest.fixture(name='slack')
def _slack():
    slack = LocalSlack(workspace=seed_workspace(), signing_secret=SIGNING_SECRET)
    slack.start_in_thread()
    yield slack
    slack.stop_thread()


@pytest.fixture(name='webhook')
def _webhook():
    target = WebhookTarget(WEBHOOK_SECRET)
    target.start_in_thread()
    yield target
    target.stop_thread()


@pytest.fixture(name='edge')
def _edge(tmp_path, fuzz_redis_url, slack, webhook, request):
    procs = launch_jit(tmp_path, slack=slack, signing_secret=SIGNING_SECRET, redis_url=fuzz_redis_url, policy=POLICY,
                       JIT_AUDIT_CHANNEL='C0AUDIT', DEMO_WEBHOOK_URL=webhook.url,
                       DEMO_WEBHOOK_SECRET=WEBHOOK_SECRET)  # fmt: skip
    client = EdgeClient(procs.port, mint=lambda: slack.mint_trigger('U0ALEX'))
    yield Edge(procs=procs, slack=slack, redis=redis.Redis.from_url(fuzz_redis_url), client=client,
               secret=SIGNING_SECRET)  # fmt: skip
    procs.stop()
    if request.node.rep_call.failed if hasattr(request.node, 'rep_call') else False:
        print(procs.dump_logs())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f'rep_{report.when}', report)
    return report
