"""End-to-end fixtures: a real Redis, the local Slack, a real webhook receiver, real jit processes.

Fixtures:
    redis_url      database 13 of this test process's own Redis server (``tests/support/redis_server.py``), flushed
    transport      "http" (signed requests to /slack/events), or also "socket" (Socket Mode envelopes)
                   for tests marked ``both_transports``: the same scenario runs over both (``socket_only``: just
                   Socket Mode)
    slack          the local Slack (``bot.sandbox``) on a free port, seeded workspace
    webhook        a real HTTP webhook receiver checking ``X-JIT-Signature``
    jit            ``jit serve`` + ``jit worker`` subprocesses wired to all three
    store          a ``RedisStore`` on the same database, to look at what jit stored
"""

from __future__ import annotations

import pytest
import redis

from bot.adapters.redis_store import RedisStore
from bot.deps import SystemClock
from bot.sandbox.local_slack import LocalSlack
from bot.sandbox.webhook_target import WebhookTarget
from bot.sandbox.workspace import seed_workspace
from tests.support.processes import launch_jit
from tests.support.redis_server import own_redis_url

SIGNING_SECRET = 'e2e-signing-secret'
WEBHOOK_SECRET = 'e2e-webhook-secret'
POLICY = """\
groups:
  devops: [alex@example.com, dana@example.com, sam@example.com]
  leads: [sam@example.com]
  security: [sec@example.com]
admins: [group:security]
resources:
  demo-app:
    description: the demo app
    provider: webhook
    settings: {url: env:DEMO_WEBHOOK_URL, secret: env:DEMO_WEBHOOK_SECRET, reconcile: true}
    roles: [read, deploy]
requests:
  - name: demo-read
    resources: [demo-app]
    roles: [read]
    requesters: [group:devops]
    approvers: [group:leads, group:security]
    approvals: 1
    timeout: 2h
    default_duration: 30m
    require_reason: true
    self_extend: 1m
  - name: demo-deploy
    resources: [demo-app]
    roles: [deploy]
    requesters: [group:devops]
    approvers: [group:leads]
    timeout: 1h
    pending_timeout: 6s
"""


@pytest.fixture(name='redis_url')
def _redis_url():
    url = own_redis_url(13)
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


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
    slack = LocalSlack(workspace=seed_workspace(), signing_secret=SIGNING_SECRET, transport=transport)
    slack.start_in_thread()
    yield slack
    slack.stop_thread()


@pytest.fixture(name='webhook')
def _webhook():
    target = WebhookTarget(WEBHOOK_SECRET)
    target.start_in_thread()
    yield target
    target.stop_thread()


@pytest.fixture(name='jit')
def _jit(tmp_path, redis_url, slack, webhook, request):
    procs = launch_jit(tmp_path, slack=slack, signing_secret=SIGNING_SECRET, redis_url=redis_url, policy=POLICY,
                       JIT_AUDIT_CHANNEL='C0AUDIT', JIT_REMINDER_AFTER='3', DEMO_WEBHOOK_URL=webhook.url,
                       DEMO_WEBHOOK_SECRET=WEBHOOK_SECRET)  # fmt: skip
    yield procs
    procs.stop()
    if request.node.rep_call.failed if hasattr(request.node, 'rep_call') else False:
        print(procs.dump_logs())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f'rep_{report.when}', report)
    return report
