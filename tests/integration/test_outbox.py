"""The outbox (workers/outbox.py) against a real Redis and a real SMTP server (STARTTLS and AUTH): who is asked by
email, each once, with a personal link; failures retried with backoff, recorded and dropped when no longer useful.

The clock is the test's, so a retry an hour away is reached without waiting for it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.adapters.outbox import Delivery
from bot.core.model import AuditName, Principal
from bot.links import LinkSigner
from bot.mail.smtp import SmtpMailer
from tests.support.outbox_rig import KEY, Rig, outbox_rig
from tests.support.smtp_server import SmtpServer, running_smtp_server
from workers.outbox import BACKOFF, MAX_ATTEMPTS, OutboxFollower

pytestmark = pytest.mark.redis

POLICY = """\
groups:
  devops: [alex@example.com]
  leads: [sam@example.com, lee@example.com, alex@example.com]
  security: [sec@example.com, U0SECONLY]
resources:
  demo-app:
    provider: webhook
    settings: {url: 'http://127.0.0.1:9/none'}
    roles: [read, deploy, admin, audit]
requests:
  - name: two-steps
    resources: [demo-app]
    roles: [deploy]
    requesters: [group:devops]
    steps:
      - {approvers: [group:leads], approvals: 1}
      - {approvers: [group:security], approvals: 1}
    ask: [slack, email]
    timeout: 1h
  - name: break-glass
    resources: [demo-app]
    roles: [admin]
    requesters: [group:devops]
    approvers: [group:security]
    break_glass: true
    ask: [email]
    timeout: 1h
  - name: slack-only
    resources: [demo-app]
    roles: [read]
    requesters: [group:devops]
    approvers: [group:leads]
    timeout: 1h
  - name: odd-addresses
    resources: [demo-app]
    roles: [audit]
    requesters: [group:devops]
    approvers: ['<lee@example.com>', 'sec@example.com.', 'a@b@example.com', sec@example.com]
    ask: [email]
    timeout: 1h
"""
LINK = re.compile(r'https://jit\.example\.com/decide/(v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)\?do=approve')


@dataclass
class MailRig:
    """The outbox rig and the SMTP server it sends through."""

    rig: Rig
    smtp: SmtpServer

    def __getattr__(self, name: str):
        return getattr(self.rig, name)

    def mails_to(self, address: str) -> list:
        return [r for r in self.smtp.received if address in r.rcpt_tos]


@pytest.fixture(name='rig')
def _rig(tmp_path: Path) -> Iterator[MailRig]:
    sender = 'jit <jit@example.com>'
    with running_smtp_server(tmp_path) as smtp:
        mailer = SmtpMailer.from_url(smtp.url, sender=sender, ca_file=str(smtp.ca_file))
        with outbox_rig(tmp_path, POLICY, 24, mailer=mailer, mail_from=sender) as rig:
            yield MailRig(rig, smtp)


def test_each_approver_of_the_step_gets_one_email_with_a_link_of_their_own(rig):
    rid = rig.file()
    rig.follow()
    rig.replay()  # the same events again: nothing is sent twice
    assert sorted(a for r in rig.smtp.received for a in r.rcpt_tos) == ['lee@example.com', 'sam@example.com']
    assert not rig.mails_to('alex@example.com')  # a lead, but the requester: never asked to approve their own
    assert not rig.mails_to('sec@example.com')  # the second step is not asked yet
    for got in rig.smtp.received:
        assert got.tls and got.login
        [token] = set(LINK.findall(got.message.get_body(('plain',)).get_content()))
        claims = LinkSigner(KEY).check(token, now=time.time())
        assert (claims.request_id, claims.email, claims.via) == (rid, got.rcpt_tos[0], 'email')
        assert claims.digest == rig.deps.store.get(rid).digest()


def test_the_next_step_is_asked_when_the_first_is_approved(rig):
    rid = rig.file()
    rig.follow()
    rig.deps.approve.execute(rid, Principal(slack_id='U0SAM', email='sam@example.com'))
    rig.follow()
    assert len(rig.mails_to('sec@example.com')) == 1
    assert len(rig.smtp.received) == 3  # the two leads, then security; U0SECONLY has no address to ask


def test_a_slack_only_rule_sends_no_email(rig):
    rig.file(role='read')
    rig.follow()
    assert rig.smtp.received == [] and rig.outbox.outbox.queued() == 0


def test_break_glass_tells_the_approvers_by_email(rig):
    rid = rig.file(role='admin')
    rig.follow()
    [got] = rig.mails_to('sec@example.com')
    assert 'break-glass' in got.message['Subject'].lower() or 'break-glass' in got.message.get_body(
        ('plain',)).get_content().lower()  # fmt: skip
    assert rid in got.message.get_body(('plain',)).get_content()
    assert not LINK.search(got.message.get_body(('plain',)).get_content())  # a notice: nothing to decide


def test_an_smtp_outage_is_retried_with_backoff_recorded_once_and_heard_of_once(rig):
    rig.smtp.stop()
    rid = rig.file()
    rig.follow()
    failed = rig.events(AuditName.DELIVERY_FAILED)
    assert len(failed) == 2  # one per approver: the first failure of each
    assert all(e['outcome'] == 'retrying' and e['request']['id'] == rid for e in failed)
    assert [e['detail']['alert'] for e in failed] == [True, False]  # the admins hear of the outage once
    assert all('Sm7p' not in (e.get('error') or '') for e in failed)  # never the password
    rig.follow()  # not due yet: nothing tried, nothing recorded
    assert len(rig.events(AuditName.DELIVERY_FAILED)) == 2
    assert rig.outbox.outbox.queued() == 2


def test_a_delivery_is_sent_when_the_server_is_back(rig, tmp_path):
    rig.smtp.fail('MAIL', '451 4.3.0 Try again later')
    rig.file()
    rig.follow()
    assert rig.smtp.received == [] and rig.outbox.outbox.queued() == 2
    rig.smtp.heal()
    rig.now[0] += BACKOFF[0] + 1
    rig.follow()
    assert len(rig.smtp.received) == 2 and rig.outbox.outbox.queued() == 0
    assert len(rig.events(AuditName.DELIVERY_FAILED)) == 2  # the first failures only; nothing more


def test_a_refused_address_is_given_up_at_once(rig):
    rig.smtp.fail('RCPT', '550 5.1.1 No such user')
    rig.file()
    rig.follow()
    failed = rig.events(AuditName.DELIVERY_FAILED)
    assert {e['outcome'] for e in failed} == {'gave_up'} and len(failed) == 2
    assert rig.outbox.outbox.queued() == 0


def test_after_the_last_attempt_it_is_given_up(rig):
    rig.smtp.stop()
    rig.file()
    for _ in range(MAX_ATTEMPTS + 2):
        rig.follow()
        rig.now[0] += 3600
    failed = rig.events(AuditName.DELIVERY_FAILED)
    assert [e['outcome'] for e in failed].count('gave_up') == 2
    assert [e['detail']['attempts'] for e in failed if e['outcome'] == 'gave_up'] == [MAX_ATTEMPTS] * 2
    assert rig.outbox.outbox.queued() == 0


def test_a_request_decided_meanwhile_is_not_asked_about(rig):
    rig.smtp.stop()
    rid = rig.file()
    rig.follow()
    rig.deps.deny.execute(rid, Principal(slack_id='U0SAM', email='sam@example.com'), 'not now')
    rig.now[0] += 3600
    rig.follow()
    assert rig.outbox.outbox.queued() == 0  # dropped as no longer useful, not tried again
    assert all(e['outcome'] == 'retrying' for e in rig.events(AuditName.DELIVERY_FAILED))


def test_missing_settings_are_a_recorded_failure_not_a_crash(rig):
    rig.outbox.mailer = None
    rig.file()
    rig.follow()
    failed = rig.events(AuditName.DELIVERY_FAILED)
    assert failed and all(e['outcome'] == 'gave_up' and 'JIT_SMTP_URL' in e['error'] for e in failed)


def test_the_follower_thread_sends_what_the_stream_calls_for(rig):
    follower = OutboxFollower(store=rig.deps.store, outbox=rig.outbox, block=0.2)
    follower.start()
    try:
        rig.file()
        rig.smtp.wait_for(lambda r: 'lee@example.com' in r.rcpt_tos, timeout=15)
        rig.smtp.wait_for(lambda r: 'sam@example.com' in r.rcpt_tos, timeout=15)
    finally:
        follower.stop()
    assert rig.deps.store.follower_cursor('outbox', 60) == rig.deps.store.audit_events(1, 10_000)[-1]['seq']


def test_a_link_asked_for_on_the_teams_page_is_sent_with_teams_as_its_channel(rig):
    rid = rig.file()
    rig.outbox.outbox.add(Delivery('link-email', rid, 'sam@example.com', '1'), rig.now[0])
    rig.outbox.send_due()
    # The rule asks by email, not in Teams: a link asked for from a Teams page is not sent for it.
    assert rig.smtp.received == []


def test_a_delivery_that_crashes_jit_is_put_back_and_holds_up_no_other(rig, monkeypatch):
    rig.file()
    real_send = rig.outbox.send

    def send(delivery):
        if delivery.to == 'lee@example.com':
            raise RuntimeError('a bug')
        return real_send(delivery)

    monkeypatch.setattr(rig.outbox, 'send', send)
    rig.follow()
    rig.follow()
    assert [a for r in rig.smtp.received for a in r.rcpt_tos] == ['sam@example.com']
    [failed] = rig.events(AuditName.DELIVERY_FAILED)
    assert failed['outcome'] == 'retrying' and failed['detail']['to'] == 'lee@example.com'
    assert rig.outbox.outbox.queued() == 1


def test_an_address_that_cannot_be_mailed_stops_nothing_else(rig):
    """A policy may name as an approver anything with an @ in it (a typo, an address in angle brackets): the
    email to it cannot be built. It is given up and recorded, once, and every other email is still sent, the
    ones of this request and of the requests filed after it: it is no poison pill at the head of the queue."""
    odd = rig.file(role='audit')
    rig.follow()
    later = rig.file()
    for _ in range(3):
        rig.follow()
        rig.now[0] += 60
    assert [r.rcpt_tos for r in rig.smtp.received if odd in r.message['Subject']] == [('sec@example.com',)]
    assert sorted(a for r in rig.smtp.received if later in r.message['Subject'] for a in r.rcpt_tos) == [
        'lee@example.com', 'sam@example.com']  # fmt: skip
    failed = rig.events(AuditName.DELIVERY_FAILED)
    assert sorted(e['detail']['to'] for e in failed) == ['<lee@example.com>', 'a@b@example.com', 'sec@example.com.']
    assert {e['outcome'] for e in failed} == {'gave_up'}
    assert rig.outbox.outbox.queued() == 0
    assert rig.deps.store.follower_cursor('outbox', 60) == rig.deps.store.audit_events(1, 10_000)[-1]['seq']
