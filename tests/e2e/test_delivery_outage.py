"""An SMTP server that is down holds up nothing but the emails: with real ``jit serve`` and ``jit worker``, the local
Slack, the demo webhook and a stopped SMTP server, the request is still asked in Slack, approved and granted; the
failure is a ``delivery.failed`` event and an alert to the admins.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.processes import launch_jit, wait_until
from tests.support.redis_server import free_port
from tests.support.reports import stop_and_show_logs
from tests.support.slack import SIGNING_SECRET, demo_webhook_env
from tests.support.smtp_server import running_smtp_server

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

ALEX, SAM, SEC = 'U0ALEX', 'U0SAM', 'U0SEC'
POLICY = """\
groups:
  devops: [alex@example.com]
  leads: [sam@example.com]
  security: [sec@example.com]
admins: [group:security]
resources:
  demo-app:
    provider: webhook
    settings: {url: env:DEMO_WEBHOOK_URL, secret: env:DEMO_WEBHOOK_SECRET}
    roles: [read]
requests:
  - name: read-by-email-too
    resources: [demo-app]
    roles: [read]
    requesters: [group:devops]
    approvers: [group:leads]
    ask: [slack, email]
    timeout: 1h
"""


def test_smtp_down_holds_up_nothing_and_is_heard_of_once(tmp_path: Path, redis_url, slack, webhook, store, request):
    port = free_port()
    with running_smtp_server(tmp_path) as smtp:
        smtp.stop()
        procs = launch_jit(tmp_path, slack=slack, signing_secret=SIGNING_SECRET, redis_url=redis_url, policy=POLICY,
                           PORT=str(port), JIT_PUBLIC_URL=f'http://127.0.0.1:{port}', JIT_AUDIT_CHANNEL='C0AUDIT',
                           JIT_LINK_KEY='delivery-outage-link-key-0123456789ab', JIT_SMTP_URL=smtp.url,
                           JIT_SMTP_CA_FILE=str(smtp.ca_file), JIT_MAIL_FROM='jit <jit@example.com>',
                           **demo_webhook_env(webhook))  # fmt: skip
        try:
            reply = slack.driver.slash(ALEX, 'request demo-app read 30s reading the logs')
            rid = reply.text.split('`')[1]
            copy = slack.workspace.wait_for_message(
                lambda m: m.channel == slack.workspace.dm_channel_id(SAM) and rid in m.content and m.action_ids,
                timeout=15,
            )
            assert slack.driver.click(SAM, copy, 'jit.approve').status == 200
            wait_until(lambda: webhook.grants_for(rid), timeout=15, what='the grant, SMTP down or not')

            failed = wait_until(lambda: [e for e in store.audit_events(1, 10_000) if e['event'] == 'delivery.failed'],
                                timeout=15, what='delivery.failed')  # fmt: skip
            [event] = failed
            assert event['outcome'] == 'retrying' and event['detail']['to'] == 'sam@example.com'
            assert event['detail']['alert'] is True and 'refused' in event['error']
            # The admins (security) hear of it in a DM, once.
            slack.workspace.wait_for_message(
                lambda m: m.channel == slack.workspace.dm_channel_id(SEC) and 'delivery.failed' in m.content,
                timeout=15,
            )
        finally:
            stop_and_show_logs(procs, request)
