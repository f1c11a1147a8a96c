"""An approver's message: the facts the decision rests on come first and whole, the reason after them, cut.

A reason is bounded when it is filed (``MAX_REASON``), but one stored before that bound, or escaping (``&`` is
five characters of mrkdwn), makes it longer than a section takes: it is the reason that is cut, with an ellipsis.
"""

from __future__ import annotations

import pytest

from bot.blocks.messages import build_approval_message
from bot.blocks.mrkdwn import ELLIPSIS, MAX_TEXT
from bot.core.errors import UsageError
from bot.core.model import MAX_REASON, AccessRequest, Principal, RequestStatus, bounded_reason
from tests.support.slack_mrkdwn import block_problems

DECISION = 'rule `prod-read` needs approval by 1 of group:leads, group:security; ticket INC-4711 matches'


def _request(reason: str, **kw) -> AccessRequest:
    return AccessRequest(id='r-abcd2345', requester=Principal(slack_id='U0ALEX', email='alex@example.com'),
                         resource='prod-db', role='read', duration=1800, reason=reason, rule='prod-read',
                         policy_version='v1', created_at=1.0, ticket='INC-4711', decision=DECISION,
                         **kw)  # fmt: skip


def _texts(blocks):
    return [b['text']['text'] if b['type'] == 'section' else b['elements'][0]['text']
            for b in blocks if b['type'] in ('section', 'context')]  # fmt: skip


@pytest.mark.parametrize('reason', ['x' * 3600, ('debugging INC-4711 ' * 200)[:3600], '&<>' * 1200, '*_`' * 1200])
@pytest.mark.parametrize('status', [RequestStatus.PENDING, RequestStatus.ACTIVE])
def test_a_long_reason_never_cuts_the_facts(reason, status):
    _, blocks = build_approval_message(_request(reason, status=status, expires_at=4000.0), None)
    assert not block_problems(blocks, allowed=['<@U0ALEX>'])
    texts = _texts(blocks)
    assert all(len(t) <= MAX_TEXT for t in texts), [len(t) for t in texts]
    facts = texts[0]
    assert facts.startswith('<@U0ALEX> asks for *read* on *prod-db* for 30m'), facts
    assert '*Ticket:* INC-4711' in facts and f'*Policy:* {DECISION}' in facts and ELLIPSIS not in facts
    assert texts[1] == 'Rule `prod-read` · request `r-abcd2345` · approvals 0 of 1'
    assert texts[2].startswith('*Reason:* ') and texts[2].endswith(ELLIPSIS), texts[2][-20:]


def test_a_reason_within_the_bound_is_shown_whole():
    reason = 'y' * MAX_REASON
    texts = _texts(build_approval_message(_request(reason), None)[1])
    assert texts[2] == f'*Reason:* {reason}'


def test_the_bound_is_one_number_with_a_refusal_that_says_it():
    assert bounded_reason('z' * MAX_REASON) == 'z' * MAX_REASON
    with pytest.raises(UsageError, match=f'at most {MAX_REASON:,}'):
        bounded_reason('z' * (MAX_REASON + 1))
