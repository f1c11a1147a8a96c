"""Approving from email, in headless Chromium, against real processes: ``jit serve`` and ``jit worker``, a real SMTP
server with STARTTLS and AUTH that the worker sends through, the local Slack and the demo webhook target.

The links are the ones the SMTP server received. A GET (a mail scanner) decides nothing; a changed, expired or
foreign link, a replayed POST and an approver whose step it is not are refused in the page and change nothing; the
approvers of both steps approve in the browser and the grant happens at the webhook.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from bot.adapters.redis_store import RedisStore
from bot.core.model import RequestStatus
from bot.deps import SystemClock
from bot.links import LinkSigner
from tests.support.processes import JitProcesses, launch_jit, wait_until
from tests.support.redis_server import flushed, free_port, own_redis_url
from tests.support.reports import stop_and_show_logs
from tests.support.slack import SIGNING_SECRET, WEBHOOK_SECRET, demo_webhook_env, local_slack, webhook_target
from tests.support.smtp_server import Received, SmtpServer, running_smtp_server

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

KEY = 'browser-email-link-key-0123456789abcdef'
ALEX = 'U0ALEX'
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
    roles: [read, deploy]
requests:
  - name: deploy-by-email
    resources: [demo-app]
    roles: [deploy]
    requesters: [group:devops]
    steps:
      - {approvers: [group:leads], approvals: 1}
      - {approvers: [group:security], approvals: 1}
    ask: [slack, email]
    timeout: 1h
"""
APPROVE_LINK = re.compile(r'href="(http://127\.0\.0\.1:\d+/decide/[^"?]+\?do=approve)"')
STEP = 20.0


@dataclass
class Rig:
    procs: JitProcesses
    slack: Any
    webhook: Any
    smtp: SmtpServer
    store: RedisStore

    def mail_to(self, address: str) -> Received:
        return self.smtp.wait_for(lambda r: address in r.rcpt_tos, timeout=STEP)

    def status(self, request_id: str) -> RequestStatus:
        found = self.store.get(request_id)
        assert found is not None
        return found.status


@pytest.fixture(name='rig')
def _rig(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Rig]:
    port = free_port()
    with (
        flushed(own_redis_url(7)) as redis_url,
        local_slack(SIGNING_SECRET) as slack,
        webhook_target(WEBHOOK_SECRET) as webhook,
        running_smtp_server(tmp_path) as smtp,
    ):
        procs = launch_jit(tmp_path, slack=slack, signing_secret=SIGNING_SECRET, redis_url=redis_url, policy=POLICY,
                           PORT=str(port), JIT_PUBLIC_URL=f'http://127.0.0.1:{port}', JIT_LINK_KEY=KEY,
                           JIT_SMTP_URL=smtp.url, JIT_SMTP_CA_FILE=str(smtp.ca_file),
                           JIT_MAIL_FROM='jit <jit@example.com>', **demo_webhook_env(webhook))  # fmt: skip
        store = RedisStore(redis.Redis.from_url(redis_url, decode_responses=True), clock=SystemClock())
        try:
            yield Rig(procs, slack, webhook, smtp, store)
        finally:
            stop_and_show_logs(procs, request)


def approve_link(mail: Received) -> str:
    html_part = mail.message.get_body(('html',)).get_content()
    [link] = set(APPROVE_LINK.findall(html_part))
    return link.replace('&amp;', '&')


def test_approving_from_email_in_the_browser(rig: Rig, browser: Any) -> None:
    from playwright.sync_api import expect

    reply = rig.slack.driver.slash(ALEX, 'request demo-app deploy 30s deploying the fix')
    assert 'Filed' in (reply.text or ''), reply.text
    rid = reply.text.split('`')[1]

    sam_mail = rig.mail_to('sam@example.com')
    assert not [r for r in rig.smtp.received if 'sec@example.com' in r.rcpt_tos]  # step 2 is not asked yet
    assert sam_mail.tls and sam_mail.login
    link = approve_link(sam_mail)

    # A mail scanner opens the link: nothing is decided.
    with urllib.request.urlopen(link, timeout=10) as scanned:
        assert scanned.status == 200
    assert rig.status(rid) is RequestStatus.PENDING

    page = browser.new_page()
    page.set_default_timeout(STEP * 1000)
    expect.set_options(timeout=STEP * 1000)

    # Changed, expired and foreign links are refused in words, and change nothing.
    head, token = link.split('?')[0].rsplit('/', 1)
    version, body, mac = token.split('.')
    tampered = f'{head}/{version}.{body}.{mac[:-2]}{"A" if mac[-2] != "A" else "B"}{mac[-1]}?do=approve'
    answer = page.goto(tampered)
    assert answer is not None and answer.status == 403
    expect(page.locator('h1')).to_have_text('This link does not work')
    digest = rig.store.get(rid).digest()
    expired = LinkSigner(KEY).mint(request_id=rid, email='sam@example.com', digest=digest, via='email',
                                   expires_at=time.time() - 5)  # fmt: skip
    answer = page.goto(f'{head}/{expired}?do=approve')
    assert answer is not None and answer.status == 410
    # Security's link while the leads' step is open: the page shows the form, the POST is refused.
    early = LinkSigner(KEY).mint(request_id=rid, email='sec@example.com', digest=digest, via='email',
                                 expires_at=time.time() + 600)  # fmt: skip
    page.goto(f'{head}/{early}?do=approve')
    page.get_by_role('button', name='Approve').click()
    expect(page.locator('[role=alert]')).to_contain_text('not an approver')
    assert rig.status(rid) is RequestStatus.PENDING

    # Sam approves from the email.
    page.goto(link)
    expect(page.locator('h1')).to_have_text('Approve this access request?')
    expect(page.locator('main')).to_contain_text('deploying the fix')
    expect(page.locator('main')).to_contain_text('sam@example.com')
    page.get_by_role('button', name='Approve').click()
    expect(page.locator('h1')).to_have_text('Your approval is recorded')
    expect(page.locator('[role=status]')).to_contain_text('1 of 2 approved — waiting for security')

    # The same form sent again (back, and press Approve once more): refused, nothing changes.
    events_before = len(rig.store.audit_events(1, 10_000))
    page.go_back()
    page.get_by_role('button', name='Approve').click()
    expect(page.locator('h1')).to_have_text('This link was already used')
    assert len(rig.store.audit_events(1, 10_000)) == events_before

    # Step 2: security's own email, approved in the browser; the grant happens at the webhook.
    sec_link = approve_link(rig.mail_to('sec@example.com'))
    page.goto(sec_link)
    page.get_by_role('button', name='Approve').click()
    expect(page.locator('h1')).to_have_text('Approved')
    wait_until(lambda: rig.webhook.grants_for(rid), timeout=STEP, what='the grant at the webhook')
    wait_until(lambda: rig.status(rid) is RequestStatus.ACTIVE, timeout=STEP, what='active')

    approvals = [e for e in rig.store.audit_events(1, 10_000) if e['event'] == 'request.approved']
    assert [(e['actor'], e['detail']['via']) for e in approvals] == [('sam@example.com', 'email'),
                                                                     ('sec@example.com', 'email')]  # fmt: skip
    # A link of a decided request shows how it ended, and offers nothing.
    page.goto(link)
    expect(page.locator('h1')).to_have_text('This request was already decided')
    expect(page.locator('form')).to_have_count(0)
    page.close()
