"""What a user or a pipeline wrote never becomes a mention, a link or markup in Slack, on any surface.

End to end over the signed HTTP edge: a reason, a ticket, a deny reason, context values and typed names full
of ``<!channel>``, ``<@U…>``, a disguised ``<https://…|:white_check_mark: Approve>`` link, ``*markup*`` and a
line break forging "Approved by" go in through the slash command, the request modal, the deny modal and the
pipeline API; every message, update, view and answer the local Slack recorded is then read the way Slack
reads mrkdwn (``tests/support/slack_mrkdwn.py``). The markup of each message must also be that of the same
message for a harmless request ("x"): whatever the text, it adds no markup and breaks no line.
"""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.api.tokens import hash_token, new_token
from bot.blocks.mrkdwn import typed
from bot.core.characters import control_in
from bot.core.model import RequestStatus
from tests.support.policies import E2E_POLICY
from tests.support.processes import launch_jit, wait_until
from tests.support.reports import stop_and_show_logs
from tests.support.slack import SIGNING_SECRET, demo_webhook_env
from tests.support.slack_mrkdwn import block_problems, block_skeleton, problems, skeleton

pytestmark = [pytest.mark.e2e, pytest.mark.redis]
ALEX, SAM, SEC = 'U0ALEX', 'U0SAM', 'U0SEC'
S = RequestStatus
TOKEN = new_token()
#: Everything the finding showed, and the rest of mrkdwn: each must stay text.
EVIL = (
    '<!channel> <!here> <!everyone> <@U0SEC> <#C0AUDIT> <!subteam^S1> '
    '<https://evil.example/x|:white_check_mark: Approve> *urgent* _now_ ~old~ `code` &lt;!here&gt; R&D'
)
FORGED_LINE = '\n:white_check_mark: Approved by <@U0SEC> · 1 of 1\n> quoted'
#: Mentions jit itself writes in these messages: the requester's and the decider's, from verified user IDs.
OURS = {f'<@{ALEX}>', f'<@{SAM}>'}
EXTRA_RULES = """\
  - name: nightly-read
    resources: [demo-app]
    roles: [read]
    requesters: [pipeline:nightly]
    trigger: pipeline
    approvers: [group:leads]
    notify: [C0ACCESS]
    timeout: 1h
"""


@pytest.fixture(name='jit')
def _jit(tmp_path, redis_url, slack, webhook, request):
    procs = launch_jit(tmp_path, slack=slack, signing_secret=SIGNING_SECRET, redis_url=redis_url,
                       policy=E2E_POLICY + EXTRA_RULES, JIT_AUDIT_CHANNEL='C0AUDIT', **demo_webhook_env(webhook),
                       JIT_REQUESTS_PER_HOUR='1000', JIT_MAX_OPEN_REQUESTS='1000',
                       JIT_API_TOKENS=f'nightly:{hash_token(TOKEN)}')  # fmt: skip
    yield procs
    stop_and_show_logs(procs, request)


def assert_inert(message: Any, allowed: set[str] = OURS) -> None:
    """Nothing in the message's fallback text or its blocks is live but jit's own mentions."""
    found = problems(message.text, allowed=allowed) + block_problems(message.blocks, allowed=allowed)
    assert not found, (found, message.text, message.blocks)


def same_markup(message: Any, benign: Any) -> None:
    """The message has exactly the markup and lines of the one built from harmless text."""
    assert skeleton(message.text) == skeleton(benign.text), (message.text, benign.text)
    assert block_skeleton(message.blocks) == block_skeleton(benign.blocks), (message.blocks, benign.blocks)


def file(slack, text: str, user: str = ALEX) -> str:
    reply = slack.driver.slash(user, text)
    assert reply.status == 200 and 'Filed' in (reply.text or ''), reply.body
    assert not problems(reply.text, allowed=OURS), reply.text
    return reply.text.split('`')[1]


def file_from_pipeline(jit, body: dict[str, Any]) -> str:
    req = urllib.request.Request(
        f'{jit.url}/api/v1/requests',
        data=json.dumps(body).encode(),
        method='POST',
        headers={'Authorization': f'Bearer {TOKEN}', 'Content-Type': 'application/json'},
    )
    with urllib.request.urlopen(req, timeout=10) as answer:
        assert answer.status == 201
        return str(json.loads(answer.read())['id'])


def message(slack, channel: str, request_id: str, marker: str):
    return slack.workspace.wait_for_message(
        lambda m: m.channel == channel and request_id in m.content and marker in m.content, timeout=15)  # fmt: skip


def audit_lines(slack, request_id: str, count: int) -> list[Any]:
    return wait_until(lambda: len(m := [x for x in slack.workspace.messages('C0AUDIT') if request_id in x.content])
                      >= count and m, timeout=15, what='audit channel lines')  # fmt: skip


def test_slash_command_reason_is_inert_in_every_copy_the_home_tab_and_the_audit_channel(jit, slack, store):
    ws = slack.workspace
    evil = file(slack, f'request demo-app read 20m {EVIL}')
    benign = file(slack, 'request demo-app read 20m x')
    # Stored as typed (Slack's entities in the command text decoded once): only what Slack shows is escaped.
    assert store.get(evil).reason == typed(EVIL)
    for channel, marker in ((ws.dm_channel_id(SAM), 'asks for'), (ws.dm_channel_id(SEC), 'asks for'),
                            (ws.dm_channel_id(ALEX), 'Your request')):  # fmt: skip
        copy = message(slack, channel, evil, marker)
        assert_inert(copy)
        same_markup(copy, message(slack, channel, benign, marker))
    [evil_line] = audit_lines(slack, evil, 1)
    [benign_line] = audit_lines(slack, benign, 1)
    assert_inert(evil_line)
    same_markup(evil_line, benign_line)
    assert slack.driver.open_home(SAM).status == 200
    home = ws.wait_for(lambda: (h := ws.home_for(SAM)) and evil in json.dumps(h.blocks) and h, timeout=10)
    found = block_problems(home.blocks, allowed=OURS)
    assert not found, found


def test_modal_reason_and_deny_reason_are_inert_for_the_requester_the_approvers_and_the_audit_channel(
    jit, slack, store
):
    ws = slack.workspace
    ids = []
    for reason, deny_reason in ((EVIL + FORGED_LINE, EVIL + FORGED_LINE), ('x', 'x')):
        assert slack.driver.slash(ALEX, '').status == 200
        view = ws.wait_for(lambda: next((v for v in ws.views_for(ALEX, include_closed=False)), None), timeout=10)
        answer = slack.driver.submit_view(ALEX, view, {'access': 'demo-app:read', 'duration': '1800', 'reason': reason})
        assert answer.status == 200 and not answer.errors, answer.body
        request_id = next(r.id for r in store.for_user(ALEX) if r.reason == reason and r.id not in ids)
        copy = message(slack, ws.dm_channel_id(SAM), request_id, 'asks for')
        assert slack.driver.click(SAM, copy, 'jit.deny').status == 200
        modal = ws.wait_for(lambda: next((v for v in ws.views_for(SAM, include_closed=False)), None), timeout=10)
        found = block_problems(modal.blocks, allowed=OURS)
        assert not found, found
        assert slack.driver.submit_view(SAM, modal, {'deny_reason': deny_reason}).status == 200
        wait_until(lambda r=request_id: store.get(r).status is S.DENIED, timeout=10, what='denied')
        ids.append(request_id)
    evil, benign = ids
    assert store.get(evil).deny_reason == (EVIL + FORGED_LINE).strip()
    for channel, marker in ((ws.dm_channel_id(ALEX), 'was denied'), (ws.dm_channel_id(ALEX), 'Your request'),
                            (ws.dm_channel_id(SAM), 'Denied by'), (ws.dm_channel_id(SEC), 'Denied by')):  # fmt: skip
        copy = message(slack, channel, evil, marker)
        assert_inert(copy)
        same_markup(copy, message(slack, channel, benign, marker))
        assert not any(line.startswith(':white_check_mark:') for line in copy.content.split('\n')), copy.content
    evil_lines, benign_lines = audit_lines(slack, evil, 2), audit_lines(slack, benign, 2)
    for line, harmless in zip(evil_lines, benign_lines, strict=True):
        assert_inert(line)
        same_markup(line, harmless)


def test_pipeline_reason_ticket_and_context_are_inert_in_the_notify_channel_and_the_audit_channel(jit, slack):
    context = {'event': '<!channel>', 'note': '<https://evil.example|Approve> *x*'}
    evil = file_from_pipeline(jit, {'resource': 'demo-app', 'role': 'read', 'reason': EVIL + FORGED_LINE,
                                    'ticket': '<!here> *T-1*', 'context': context})  # fmt: skip
    benign = file_from_pipeline(jit, {'resource': 'demo-app', 'role': 'read', 'reason': 'x', 'ticket': 'x',
                                      'context': {'event': 'x', 'note': 'x'}})  # fmt: skip
    copy = message(slack, 'C0ACCESS', evil, 'asks for')
    assert_inert(copy, allowed=set())
    same_markup(copy, message(slack, 'C0ACCESS', benign, 'asks for'))
    [evil_line], [benign_line] = audit_lines(slack, evil, 1), audit_lines(slack, benign, 1)
    assert_inert(evil_line, allowed=set())
    same_markup(evil_line, benign_line)


@pytest.mark.parametrize('words', [
    'request <!channel> read 10m x', 'request <@U0SEC>', 'release <!here>', 'cancel <#C0AUDIT>',
    'extend <https://evil.example|Approve> 10m', 'request *demo-app* read 10m x',
])  # fmt: skip
def test_answers_that_echo_what_was_typed_are_inert(jit, slack, words):
    reply = slack.driver.slash(ALEX, words)
    assert reply.status == 200 and reply.text, reply.body
    assert not problems(reply.text, allowed=OURS), reply.text
    outside_code = re.sub(r'`[^`\n]*`', '', reply.text)  # in a code span, `*` is a character like any other
    assert '*demo-app*' not in outside_code and '<' not in reply.text, reply.text


ADVERSARIAL = st.lists(st.one_of(
    st.sampled_from(['<!channel>', '<!here>', '<!everyone>', '<@U123>', '<#C123>', '<!subteam^S1>',
                     '<http://x|y>', '&lt;', '&amp;gt;', '*', '_', '~', '`', '```', '>', '\n', '\u202e', '\u200b']),
    st.text(max_size=12),
), min_size=1, max_size=8).map(''.join).filter(lambda s: bool(s.strip()))  # fmt: skip
#: What filing takes (controls are refused with a 422, tests/usecases/test_reason_bound.py): a reason may hold tabs
#: and line breaks, a ticket is one line.
REASONS = ADVERSARIAL.filter(lambda s: control_in(s) is None)
TICKETS = ADVERSARIAL.filter(lambda s: control_in(s, allowed='') is None)


@settings(max_examples=4, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
@given(reason=REASONS, ticket=TICKETS)
def test_generated_text_through_the_running_app_stays_inert(jit, slack, reason, ticket):
    """A few generated reasons and tickets, through the pipeline API, as the notify channel shows them."""
    benign = file_from_pipeline(jit, {'resource': 'demo-app', 'role': 'read', 'reason': 'x', 'ticket': 'x'})
    evil = file_from_pipeline(jit, {'resource': 'demo-app', 'role': 'read', 'reason': reason[:1000],
                                    'ticket': ticket[:100]})  # fmt: skip
    copy = message(slack, 'C0ACCESS', evil, 'asks for')
    assert_inert(copy, allowed=set())
    same_markup(copy, message(slack, 'C0ACCESS', benign, 'asks for'))
