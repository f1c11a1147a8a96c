"""The outbox's Teams side (workers/outbox.py) against a real Redis and a real HTTP receiver standing in for the
channel's webhook (tests/support/teams_receiver.py), posted to by the real client (bot/teams/webhook.py).

One approval card per step, its buttons channel links (no email: the page asks for one); the outcome card when
it is decided; break-glass as a notice; a throttled webhook retried no sooner than it asked, the failure recorded
without the webhook's secret URL. The clock is the test's, so a retry minutes away is reached without waiting.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.core.model import AuditName, Principal
from bot.links import LinkSigner
from bot.teams.webhook import TeamsWebhook
from tests.support.outbox_rig import KEY, Rig, outbox_rig
from tests.support.teams_receiver import Answer, TeamsReceiver, card_of, card_text
from tests.teams.cards import validate

pytestmark = pytest.mark.redis

POLICY = """\
groups:
  devops: [alex@example.com]
  leads: [sam@example.com, lee@example.com]
  security: [sec@example.com]
teams:
  sec-approvals: {webhook: env:TEAMS_SEC_WEBHOOK}
resources:
  demo-app:
    provider: webhook
    settings: {url: 'http://127.0.0.1:9/none'}
    roles: [read, deploy, admin]
requests:
  - name: two-steps
    resources: [demo-app]
    roles: [deploy]
    requesters: [group:devops]
    steps:
      - {approvers: [group:leads], approvals: 1}
      - {approvers: [group:security], approvals: 1}
    ask: [slack, teams:sec-approvals]
    timeout: 1h
  - name: break-glass
    resources: [demo-app]
    roles: [admin]
    requesters: [group:devops]
    approvers: [group:security]
    break_glass: true
    ask: [teams:sec-approvals]
    timeout: 1h
"""


@dataclass
class TeamsRig:
    """The outbox rig and the channel's webhook it posts to."""

    rig: Rig
    teams: TeamsReceiver

    def __getattr__(self, name: str):
        return getattr(self.rig, name)

    def follow(self) -> None:
        """What the follower does in a round, every event planned again (deduplicated by the outbox)."""
        self.rig.replay()


@pytest.fixture(name='rig')
def _rig(tmp_path: Path) -> Iterator[TeamsRig]:
    with TeamsReceiver() as teams, outbox_rig(tmp_path, POLICY, 25, teams=TeamsWebhook(timeout=2),
                                              environ={'TEAMS_SEC_WEBHOOK': teams.url}) as rig:  # fmt: skip
        yield TeamsRig(rig, teams)


def actions(payload: dict) -> dict[str, str]:
    return {a['title']: a['url'] for a in card_of(payload).get('actions', [])}


def test_a_filed_request_posts_one_schema_valid_card_whose_buttons_are_channel_links(rig):
    rid = rig.file()
    rig.follow()
    rig.follow()  # the same events again: nothing is posted twice
    [payload] = rig.teams.payloads
    validate(payload)
    text = card_text(payload)
    assert 'Alex Doe (alex@example.com) asks for deploy on demo-app for 30m' in text
    assert 'deploying the fix' in text and rid in text and 'waiting for leads' in text
    request = rig.deps.store.get(rid)
    for do, url in (('approve', actions(payload)['Approve']), ('deny', actions(payload)['Deny'])):
        parts = urllib.parse.urlsplit(url)
        assert (parts.scheme, parts.netloc, parts.query) == ('https', 'jit.example.com', f'do={do}')
        assert parts.path.startswith('/decide/teams/')
        claims = LinkSigner(KEY).check(parts.path.removeprefix('/decide/teams/'), now=time.time())
        assert (claims.request_id, claims.email, claims.via, claims.digest) == (rid, '', 'teams', request.digest())


def test_the_next_step_gets_a_card_of_its_own_and_the_denial_an_outcome_card(rig):
    rid = rig.file()
    rig.follow()
    rig.deps.approve.execute(rid, Principal(slack_id='U0SAM', email='sam@example.com'))
    rig.follow()
    second = rig.teams.wait_for(lambda p: 'waiting for security' in card_text(p), timeout=5)
    assert '1 of 2 approved' in card_text(second) and set(actions(second)) == {'Approve', 'Deny'}
    rig.deps.deny.execute(rid, Principal(slack_id='U0SEC', email='sec@example.com'), 'not **now**\n[ok](https://x)')
    rig.follow()
    outcome = rig.teams.wait_for(lambda p: 'Denied by' in card_text(p), timeout=5)
    validate(outcome)
    assert 'Denied by sec@example.com: not **now** [ok](https://x)' in card_text(outcome)
    assert actions(outcome) == {}
    assert len(rig.teams.payloads) == 3


def test_break_glass_posts_a_notice_without_buttons(rig):
    rid = rig.file(role='admin', reason='prod is down')
    rig.follow()
    [payload] = rig.teams.payloads
    assert 'Break-glass access' in card_text(payload) and rid in card_text(payload)
    assert actions(payload) == {}


def test_a_throttled_webhook_is_retried_no_sooner_than_it_asked_and_the_url_is_not_recorded(rig):
    rig.teams.answer_next(Answer.throttled(120))
    rid = rig.file()
    rig.follow()
    assert rig.teams.payloads == [] and len(rig.teams.received) == 1
    [failed] = rig.events(AuditName.DELIVERY_FAILED)
    assert failed['outcome'] == 'retrying' and failed['request']['id'] == rid and '429' in failed['error']
    recorded = str(failed)
    assert rig.teams.path_secret not in recorded and rig.teams.sig not in recorded
    rig.now[0] += 60  # past the outbox's own first backoff, not past the webhook's Retry-After
    rig.follow()
    assert len(rig.teams.received) == 1
    rig.now[0] += 61
    rig.follow()
    assert len(rig.teams.payloads) == 1 and rid in card_text(rig.teams.payloads[0])


def test_a_huge_retry_after_parks_a_delivery_no_longer_than_the_longest_backoff(rig):
    from workers.outbox import BACKOFF

    rig.teams.answer_next(Answer.throttled(10**9))
    rid = rig.file()
    rig.follow()
    assert rig.teams.payloads == []
    rig.now[0] += BACKOFF[-1] + 1
    rig.follow()
    assert len(rig.teams.payloads) == 1 and rid in card_text(rig.teams.payloads[0])
