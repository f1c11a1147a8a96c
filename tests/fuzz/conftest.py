"""Fuzz fixtures: a real ``jit serve`` + ``jit worker`` to throw generated requests at.

Adapted from ``tests/e2e/conftest.py`` (same policy, ``E2E_POLICY``, and secrets, from ``tests/support``; the
same local Slack and webhook target, over HTTP only). Differences:

    fuzz_redis_url  database 7 of this test process's own Redis server, flushed before and after each test
    edge            fresh processes per test (so one test's filed requests cannot move the state another
                    test watches), plus an :class:`~tests.fuzz.edge.EdgeClient` that records the figures
"""

from __future__ import annotations

import pytest
import redis

from tests.fuzz.edge import FUZZ_REDIS_URL, Edge, EdgeClient
from tests.support.policies import E2E_POLICY
from tests.support.processes import launch_jit
from tests.support.redis_server import flushed
from tests.support.reports import (
    pytest_runtest_makereport,  # noqa: F401 (the hook: failed tests show their logs)
    stop_and_show_logs,
)
from tests.support.slack import SIGNING_SECRET, WEBHOOK_SECRET, demo_webhook_env, local_slack, webhook_target


@pytest.fixture(name='fuzz_redis_url')
def _fuzz_redis_url():
    with flushed(FUZZ_REDIS_URL) as url:
        yield url


@pytest.fixture(name='slack')
def _slack():
    with local_slack(SIGNING_SECRET) as slack:
        yield slack


@pytest.fixture(name='webhook')
def _webhook():
    with webhook_target(WEBHOOK_SECRET) as target:
        yield target


@pytest.fixture(name='edge')
def _edge(tmp_path, fuzz_redis_url, slack, webhook, request):
    procs = launch_jit(tmp_path, slack=slack, signing_secret=SIGNING_SECRET, redis_url=fuzz_redis_url,
                       policy=E2E_POLICY, JIT_AUDIT_CHANNEL='C0AUDIT', **demo_webhook_env(webhook))  # fmt: skip
    client = EdgeClient(procs.port, mint=lambda: slack.mint_trigger('U0ALEX'))
    yield Edge(procs=procs, slack=slack, redis=redis.Redis.from_url(fuzz_redis_url), client=client,
               secret=SIGNING_SECRET)  # fmt: skip
    stop_and_show_logs(procs, request)
