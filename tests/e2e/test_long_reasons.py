"""A reason is at most ``MAX_REASON`` characters on every entry point, and an approver's message keeps the facts.

Through the local Slack and a running ``jit serve``: ``/jit request`` and ``/jit extend`` refuse a longer reason
with a message that says the bound, the request form limits its field to it and refuses one past it; a reason at
the bound is filed, and the approver's copy shows who, what, how long, the rule and the policy's word in full,
every section within Slack's 3,000 characters, the reason after them (cut with an ellipsis once escaped).
"""

from __future__ import annotations

import json

import pytest

from bot.blocks.mrkdwn import ELLIPSIS, MAX_TEXT
from bot.core.model import MAX_REASON
from tests.e2e.test_request_flow import ALEX, SAM, approval_copy, file_request, request_id_from

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


def _refused(reply) -> None:
    assert reply.status == 200, reply.body
    assert 'Filed' not in (reply.text or '') and f'at most {MAX_REASON:,}' in (reply.text or ''), reply.text


def test_a_slash_command_refuses_a_reason_past_the_bound(jit, slack, store):
    _refused(slack.driver.slash(ALEX, 'request demo-app read 20m ' + 'x' * (MAX_REASON + 1)))
    assert store.for_user(ALEX) == [], 'nothing filed'
    words = ('debugging INC-4711 ' * 200)[:3600]  # the 3,600 characters that once cut the policy line
    _refused(slack.driver.slash(ALEX, f'request demo-app read 20m {words}'))
    request_id, _ = file_request(slack, text='request demo-app read 20m ' + 'y' * MAX_REASON)
    assert store.get(request_id).reason == 'y' * MAX_REASON, 'the bound itself is taken'


def test_extend_refuses_a_reason_past_the_bound(jit, slack, store):
    request_id, _ = file_request(slack, text='request demo-app read 20m extend me later')
    _refused(slack.driver.slash(ALEX, f'extend {request_id} 10m ' + 'x' * (MAX_REASON + 1)))
    assert [r.id for r in store.for_user(ALEX)] == [request_id], 'no extension filed'


def test_the_request_form_limits_the_reason_and_refuses_one_past_it(jit, slack, store):
    assert slack.driver.slash(ALEX, '').status == 200
    view = slack.workspace.wait_for(lambda: next(iter(slack.workspace.views_for(ALEX)), None), timeout=10)
    field = next(b for b in view.blocks if b['block_id'] == 'reason')['element']
    assert field['max_length'] == MAX_REASON, 'the same bound as the command and the API'
    long = {'access': 'demo-app:read', 'duration': '1800', 'reason': 'x' * (MAX_REASON + 1)}
    reply = slack.driver.submit_view(ALEX, view, long, strict=False)  # past what Slack itself would send
    assert reply.status == 200 and set(reply.errors) == {'reason'}, reply.body
    assert f'at most {MAX_REASON:,}' in reply.errors['reason']
    assert store.for_user(ALEX) == []


def test_an_approver_sees_the_facts_whole_beside_a_reason_at_the_bound(jit, slack, store):
    """Every character of this reason is escaped to five (``&amp;``): 5,000 characters of mrkdwn for 1,000."""
    reply = slack.driver.slash(ALEX, 'request demo-app read 20m ' + '&' * MAX_REASON)
    assert 'Filed' in (reply.text or ''), reply.text
    request_id = request_id_from(reply.text)
    request = store.get(request_id)
    copy = approval_copy(slack, SAM, request_id)
    texts = [b['text']['text'] if b['type'] == 'section' else b['elements'][0]['text']
             for b in copy.blocks if b['type'] in ('section', 'context')]  # fmt: skip
    assert all(len(t) <= MAX_TEXT for t in texts), [len(t) for t in texts]
    facts, reason = texts[0], next(t for t in texts if t.startswith('*Reason:*'))
    assert f'<@{ALEX}> asks for *read* on *demo-app* for 20m' in facts
    assert request.decision and f'*Policy:* {request.decision}' in facts, facts
    assert texts.index(reason) > 0 and reason.endswith(ELLIPSIS) and '&amp;' * 100 in reason
    rule_line = next(t for t in texts if t.startswith('Rule '))
    assert f'`{request.rule}`' in rule_line and texts.index(rule_line) < texts.index(reason)
    assert json.dumps(copy.action_ids) == '["jit.approve", "jit.deny"]'
