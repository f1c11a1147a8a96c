"""What the Teams cards say: the approval card's facts and buttons, the outcome and break-glass cards."""

from __future__ import annotations

import pytest

from bot.core.model import Principal, RequestStatus
from bot.core.progress import outcome_text
from bot.teams.card import LINK_NOTE, approval_card, breakglass_card, outcome_card
from tests.teams.cards import (
    ALEX,
    APPROVE_URL,
    DENY_URL,
    RULE,
    WAITING,
    a_request,
    card,
    decided,
    nodes,
    runs,
    shown,
    strings,
)

S = RequestStatus


def approval(request=None, **kw):
    args = {'approve_url': APPROVE_URL, 'deny_url': DENY_URL, 'waiting': WAITING, **kw}
    return approval_card(request or a_request(), RULE, **args)


def test_the_payload_is_a_message_with_one_adaptive_card_of_version_1_4():
    payload = approval()
    assert payload['type'] == 'message'
    (attachment,) = payload['attachments']
    assert attachment['contentType'] == 'application/vnd.microsoft.card.adaptive'
    assert attachment['contentUrl'] is None
    content = attachment['content']
    assert content['$schema'] == 'http://adaptivecards.io/schemas/adaptive-card.json'
    assert (content['type'], content['version']) == ('AdaptiveCard', '1.4')


def test_the_approval_card_says_who_asks_for_what_how_long_why_under_which_rule_and_where_it_stands():
    lines = shown(approval()).splitlines()
    assert lines == [
        'Access request',
        'Alex Doe (alex@example.com) asks for read on prod-db for 1h30m',
        'Reason: INC-4521 customer data export fails',
        'Ticket: INC-4521',
        'Rule: prod-db-read',
        'Status: 1 of 2 approved — waiting for security',
        'Request: r-abcd2345',
        LINK_NOTE,
    ]
    assert 'asks for your work email and sends you a personal link' in LINK_NOTE
    assert 'Teams does not tell jit who clicked' in LINK_NOTE


def test_approve_and_deny_open_the_two_urls_given_and_nothing_else_is_a_link():
    content = card(approval())
    assert content['actions'] == [
        {'type': 'Action.OpenUrl', 'title': 'Approve', 'url': APPROVE_URL, 'style': 'positive'},
        {'type': 'Action.OpenUrl', 'title': 'Deny', 'url': DENY_URL, 'style': 'destructive'},
    ]
    urls = [s for _, _, s in strings(content) if '://' in s and s != content['$schema']]
    assert urls == [APPROVE_URL, DENY_URL]
    assert not [n for n in nodes(content) if 'selectAction' in n]


def test_a_request_without_ticket_or_reason_says_so():
    lines = shown(approval(a_request(ticket=None, reason=''))).splitlines()
    assert 'Reason: none given' in lines
    assert not [line for line in lines if line.startswith('Ticket')]


def test_an_extension_reads_as_asking_to_extend_the_grant():
    request = a_request(extends='r-zzzz9999', duration=1800)
    lines = shown(approval(request)).splitlines()
    asks = 'Alex Doe (alex@example.com) asks to extend r-zzzz9999 (read on prod-db) by 30m'
    assert lines[:2] == ['Request to extend access', asks]


@pytest.mark.parametrize(
    ('who', 'named'),
    [
        (Principal(slack_id='U0A', email='alex@example.com', name='Alex Doe'), 'Alex Doe (alex@example.com)'),
        (Principal(slack_id='U0A', email='alex@example.com'), 'alex@example.com'),
        (Principal(email='alex@example.com', name='alex@example.com'), 'alex@example.com'),
        (Principal(slack_id='U0A', name='Alex Doe'), 'Alex Doe'),
        (Principal(slack_id='U0A'), 'Slack user U0A'),
        (Principal(pipeline='deploy-prod'), 'pipeline:deploy-prod'),
    ],
)
def test_the_requester_is_named_by_name_and_email_or_as_the_pipeline(who, named):
    assert shown(approval(a_request(requester=who))).splitlines()[1].startswith(f'{named} asks for ')


def test_approve_and_deny_must_be_absolute_http_urls():
    for bad in ('javascript:alert(1)', '/decide/x', 'https:///nohost', 'https://jit.example.com/\nx', 'ftp://x/y'):
        with pytest.raises(ValueError, match='absolute http'):
            approval(approve_url=bad)
        with pytest.raises(ValueError, match='absolute http'):
            approval(deny_url=bad)


@pytest.mark.parametrize(
    ('req', 'head'),
    [
        (decided(S.APPROVED), 'Approved'),
        (decided(S.ACTIVE), 'Approved'),
        (decided(S.REVOKED), 'Approved'),
        (decided(S.FAILED, error='the provider said no'), 'Approved, but the grant failed'),
        (decided(S.DENIED, deny_reason='use the replica'), 'Denied'),
        (decided(S.DENIED), 'Denied'),
        (a_request(status=S.EXPIRED), 'Expired'),
        (a_request(status=S.CANCELLED), 'Cancelled'),
    ],
    ids=lambda v: v if isinstance(v, str) else str(v.status),
)
def test_the_outcome_card_says_how_it_ended_and_has_no_buttons(req, head):
    outcome = outcome_text(req)
    payload = outcome_card(req, RULE, outcome=outcome)
    assert shown(payload) == '\n'.join([
        head, 'Alex Doe (alex@example.com) asked for read on prod-db for 1h30m', outcome,
        'Rule: prod-db-read', 'Request: r-abcd2345',
    ])  # fmt: skip
    assert 'actions' not in card(payload)
    assert not [n for n in nodes(card(payload)) if str(n.get('type', '')).startswith('Action.')]


def test_the_outcome_is_shown_as_the_sentence_given():
    req = decided(S.DENIED, deny_reason='use the replica')
    assert outcome_text(req) == 'Denied by sam@example.com: use the replica'
    assert outcome_text(req) in runs(outcome_card(req, RULE, outcome=outcome_text(req)))


def test_an_outcome_card_without_its_rule_names_the_rule_of_the_request():
    req = a_request(status=S.EXPIRED)
    assert 'Rule: prod-db-read' in shown(outcome_card(req, None, outcome=outcome_text(req)))


def test_the_breakglass_card_is_a_notice_without_buttons():
    payload = breakglass_card(a_request(status=S.APPROVED, decided_by=ALEX), RULE)
    lines = shown(payload).splitlines()
    took = 'Alex Doe (alex@example.com) approved their own request for read on prod-db for 1h30m.'
    assert lines[:2] == ['Break-glass access', took]
    assert 'Reason: INC-4521 customer data export fails' in lines and 'Request: r-abcd2345' in lines
    assert 'actions' not in card(payload)
