"""A link decides as the email address it was sent to, and self-approval is told apart by identity: a requester
whose email jit does not know (a Slack app without ``users:read.email``) could be emailed a link to their own
request, named in the policy once by Slack ID (as a requester) and once by address (as an approver).

So a rule whose approvers decide by link refuses such a requester at filing, and a link decision on a request
whose requester has no known address is refused (a request filed under an earlier policy, or before the change).
Slack decisions are unaffected: a click carries the Slack ID, which is compared.
"""

import pytest

from bot.core import transitions as t
from bot.core.errors import IdentityRefused, NotThisChannel
from bot.core.model import AccessRequest, Principal, RequestStatus
from bot.core.policy_loader import build_policy
from bot.usecases.submit_request import SubmitRequest
from tests.support.fakes import IgnoringQueue, MovableClock
from tests.support.memory_store import MemoryStore

POLICY = """\
groups:
  oncall: [U0SAM, U0ALEX]
resources:
  db: {provider: webhook, roles: [read, write]}
teams:
  sec: {webhook: env:TEAMS_WEBHOOK}
requests:
  - name: by-link
    resources: [db]
    roles: [read]
    requesters: [group:oncall]
    approvers: [sam@example.com, lee@example.com]
    ask: [slack, email, teams:sec]
  - name: in-slack
    resources: [db]
    roles: [write]
    requesters: [group:oncall]
    approvers: [sam@example.com, U0LEE]
"""
#: sam, as Slack describes him to an app that may not read email addresses.
SAM_NO_EMAIL = Principal(slack_id='U0SAM')
SAM_BY_LINK = Principal(email='sam@example.com')
LEE_BY_LINK = Principal(email='lee@example.com')
LEE_IN_SLACK = Principal(slack_id='U0LEE', email='lee@example.com')


def _request(requester: Principal, role: str = 'read') -> AccessRequest:
    return AccessRequest(id='r-aaaaaaaa', requester=requester, resource='db', role=role, duration=600,
                         reason='checking', rule='by-link' if role == 'read' else 'in-slack',
                         policy_version='v', created_at=0.0)  # fmt: skip


@pytest.mark.parametrize('via', ['email', 'teams'])
def test_a_link_does_not_decide_a_request_whose_requester_has_no_known_address(via):
    policy = build_policy({'p.yaml': POLICY})
    rule = policy.rules[0]
    request = _request(SAM_NO_EMAIL)
    with pytest.raises(NotThisChannel, match='email address'):
        t.approve(request, SAM_BY_LINK, policy=policy, rule=rule, now=1.0, via=via)
    with pytest.raises(NotThisChannel, match='email address'):
        t.approve(request, LEE_BY_LINK, policy=policy, rule=rule, now=1.0, via=via)  # nobody's link: it cannot tell
    with pytest.raises(NotThisChannel, match='email address'):
        t.deny(request, LEE_BY_LINK, policy=policy, rule=rule, reason='no', via=via)
    approved, _ = t.approve(request, LEE_IN_SLACK, policy=policy, rule=rule, now=1.0, via='slack')
    assert approved.status is RequestStatus.APPROVED


def test_a_link_decides_when_the_requester_has_an_address():
    policy = build_policy({'p.yaml': POLICY})
    alex = Principal(slack_id='U0ALEX', email='alex@example.com')
    approved, _ = t.approve(_request(alex), LEE_BY_LINK, policy=policy, rule=policy.rules[0], now=1.0, via='email')
    assert approved.status is RequestStatus.APPROVED


def _submit() -> tuple[MemoryStore, SubmitRequest]:
    clock = MovableClock()
    store = MemoryStore(clock=clock)
    policy = build_policy({'p.yaml': POLICY})
    return store, SubmitRequest(store=store, queue=IgnoringQueue(), policy=lambda: policy, clock=clock)


def test_a_rule_that_takes_link_decisions_refuses_a_requester_without_a_known_address():
    store, submit = _submit()
    with pytest.raises(IdentityRefused, match=r'users:read\.email'):
        submit.execute(requester=SAM_NO_EMAIL, resource='db', role='read', duration=600, reason='checking')
    assert store.for_user('U0SAM') == []


def test_a_rule_decided_in_slack_only_takes_a_requester_without_a_known_address():
    _, submit = _submit()
    filed = submit.execute(requester=SAM_NO_EMAIL, resource='db', role='write', duration=600, reason='checking')
    assert filed.status is RequestStatus.PENDING
