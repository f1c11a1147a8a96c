"""Whatever a user or a pipeline writes, no builder lets it become a mention, a link or markup (generated).

Adversarial text (mentions, links, pre-escaped entities, markup characters, line breaks forging "Approved by",
control characters, bidi overrides, zero-width characters, lone surrogates, 10,000-character reasons) goes
into every field that reaches a message: reason, ticket, deny reason, a provider's error, resource and role
names, a pipeline's name and context, an email, the audit actor, names typed after ``/jit``. Every builder's
output is then read as Slack reads mrkdwn (``tests/support/slack_mrkdwn.py``): its only control sequences are
jit's own mentions of verified user IDs, and its markup and lines are those of the same output built from
harmless text. Pure and fast: the builders are called directly.
"""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.blocks.answers import denial_answer, extend_answer, filed_answer, list_answer, refusal, resources_answer
from bot.blocks.home import build_home
from bot.blocks.messages import (
    audit_line,
    build_approval_message,
    build_deny_modal,
    build_expiry_warning,
    build_status_message,
    build_warning_closed,
    details_text,
    reminder_text,
    requester_update,
)
from bot.blocks.mrkdwn import ELLIPSIS, MAX_TEXT, SLACK_USER_ID, code, cut, mention, message, text, typed, user
from bot.blocks.request_modal import build_request_modal
from bot.core.commands import UsageError
from bot.core.model import AccessRequest, Approval, Principal, RequestStatus
from bot.core.policy import evaluate, requestable
from bot.core.policy_loader import build_policy
from bot.listeners.commands.jit_command import TYPED_NAME, UNREADABLE, _readable
from tests.support.slack_mrkdwn import block_problems, block_skeleton, problems, skeleton

NOW = 1_900_000_000.0
REQUESTER = Principal(slack_id='U0REQ', email='req@example.com')
DECIDER = Principal(slack_id='U0DEC', email='dec@example.com')
#: The mentions jit itself writes: of verified user IDs (requester, decider, an approver and an admin named by ID).
OURS = frozenset({'<@U0REQ>', '<@U0DEC>', '<@U0APPR>', '<@U0ADMIN>'})
POLICY = build_policy(
    {
        'p.yaml': """
groups:
  leads: [lead@example.com]
admins: [U0ADMIN]
resources:
  app:
    description: 'the app <!channel> *see* <https://evil.example|runbook>'
    provider: webhook
    roles: [read, snake_case_role]
requests:
  - name: app-read
    resources: [app]
    roles: [read, snake_case_role]
    requesters: [U0REQ, pipeline:ci]
    approvers: [U0APPR, group:leads]
    timeout: 2h
"""
    }
)
RULE = POLICY.rule_named('app-read')
EVENTS = ('request.created', 'request.approved', 'request.denied', 'request.cancelled', 'request.expired',
          'grant.extended', 'grant.active', 'grant.failed', 'grant.revoked', 'grant.revoke_failed')  # fmt: skip
FRAGMENTS = [
    '<!channel>', '<!here>', '<!everyone>', '<@U123>', '<@W0XYZ|boss>', '<#C123>', '<#C123|general>',
    '<!subteam^S1>', '<!subteam^S1|@team>', '<!date^1392734382^{date}|x>', '<http://x|y>',
    '<https://evil.example/x|:white_check_mark: Approve>', '<mailto:a@b.example|mail>', '<', '>', '&', '&lt;',
    '&gt;', '&amp;', '&amp;lt;', '&#60;', '&lt;!channel&gt;', '*', '_', '~', '`', '```', '*bold*', '_it_', '~st~',
    '`code`', 'snake_case', '> quote', '&gt; quote', '\n', '\r\n', '\r', '\n:white_check_mark: Approved by <@U0DEC>\n',
    '\u2028', '\u2029', '\x85', '\x0b', '\x0c', '\t', '\x00', '\x1b[31m', '\x7f', '\u202e', '\u202d', '\u202a',
    '\u2066', '\u2069', '\u200e', '\u200f', '\u061c', '\u200b', '\u200c', '\u200d', '\u2060', '\ufeff', '\ud800',
    '\udfff', '@channel', '@here', '#general', 'https://evil.example', ':white_check_mark:', ' ', '\xe9', '\U0001f600',
]  # fmt: skip
ADVERSARIAL = st.one_of(
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=12).map(''.join),
    st.text(st.characters(exclude_categories=()), max_size=40),
    st.builds(lambda fragment, n: (fragment * (n // len(fragment) + 1))[:n], st.sampled_from(FRAGMENTS),
              st.integers(2_900, 10_000)),
)  # fmt: skip
#: Words that could be names (``prod_db``, ``r-abcd2345``, ``a._b_``): echoed, so they must be inert too.
NAMES = st.from_regex(r'[A-Za-z0-9][A-Za-z0-9_.-]{0,20}', fullmatch=True)


def harmless(value: str | None) -> str | None:
    """What the output is compared with: ``x`` for any text, nothing for none (so the same lines exist)."""
    return 'x' if value else value


@st.composite
def principals(draw) -> tuple[Principal, Principal]:
    """(adversarial, harmless): jit's own verified users, or a pipeline, an email, a malformed user ID."""
    kind = draw(st.sampled_from(['requester', 'decider', 'pipeline', 'email', 'bad_id']))
    if kind in ('requester', 'decider'):
        same = REQUESTER if kind == 'requester' else DECIDER
        return same, same
    value = draw(ADVERSARIAL if kind != 'bad_id' else ADVERSARIAL.filter(lambda v: not SLACK_USER_ID.fullmatch(v)))
    field = {'pipeline': 'pipeline', 'email': 'email', 'bad_id': 'slack_id'}[kind]
    return Principal(**{field: value}), Principal(**{field: harmless(value)})


@st.composite
def requests(draw) -> tuple[AccessRequest, AccessRequest]:
    """An adversarial request and its harmless twin (every written field ``x``, the same shape)."""
    fields = {name: draw(ADVERSARIAL) for name in ('reason', 'resource', 'role')}
    fields |= {name: draw(st.none() | ADVERSARIAL) for name in ('ticket', 'deny_reason', 'error', 'extends')}
    context = draw(st.none() | st.dictionaries(st.sampled_from(['event', 'branch', 'note']), ADVERSARIAL, max_size=3))
    requester, requester_x = draw(principals())
    decided = draw(st.none() | principals())
    approvals = draw(st.lists(principals(), max_size=2))
    status = draw(st.sampled_from(list(RequestStatus)))
    common = dict(id='r-abcd2345', duration=1800, rule='app-read', policy_version='v1', created_at=NOW - 600,
                  status=status, granted_at=NOW - 300, expires_at=NOW + 900, ended_at=NOW,
                  decision='rule `app-read` needs approval by 1 of U0APPR, group:leads')  # fmt: skip
    evil = AccessRequest(**common, **fields, requester=requester, context=context,
                         decided_by=decided[0] if decided else None,
                         approvals=tuple(Approval(by=a, step=0, at=NOW) for a, _ in approvals))  # fmt: skip
    safe = AccessRequest(**common, **{k: harmless(v) for k, v in fields.items()}, requester=requester_x,
                         context={k: 'x' for k in context} if context is not None else None,
                         decided_by=decided[1] if decided else None,
                         approvals=tuple(Approval(by=b, step=0, at=NOW) for _, b in approvals))  # fmt: skip
    return evil, safe


def record(request: AccessRequest, actor: str, event: str) -> dict:
    return {'seq': 7, 'event': event, 'actor': actor, 'request': request.summary(), 'rule': request.rule,
            'policy_version': request.policy_version, 'outcome': 'pending', 'error': request.error}  # fmt: skip


def surfaces(request: AccessRequest, actor: str) -> dict[str, tuple[str, object]]:
    """Every builder's output for one request: ``{surface: (mrkdwn text, blocks or view)}``."""
    out: dict[str, tuple[str, object]] = {}
    for can_decide in (True, False):
        out[f'approval message (can decide: {can_decide})'] = build_approval_message(
            request, RULE, can_decide=can_decide
        )
    out['status message'] = build_status_message(request, RULE)
    out['"ends soon" DM'] = build_expiry_warning(request, 600)
    out['"ends soon" DM, closed'] = build_warning_closed(request)
    out['deny modal'] = ('', build_deny_modal(request, reason_required=True))
    for event in EVENTS:
        out[f'requester DM on {event}'] = (requester_update(event, request, RULE) or '', [])
        out[f'audit channel line for {event}'] = (audit_line(record(request, actor, event)), [])
    out['reminder'] = (reminder_text(request, 2, '15m'), [])
    out['filed answer'] = (filed_answer(request, POLICY), [])
    out['extend answer'] = (extend_answer(request), [])
    out['list answer'] = (list_answer([request], [request], NOW), [])
    out['App Home'] = ('', build_home([request], [request], POLICY, NOW))
    return out


def assert_inert(where: str, text_: str, blocks: object, allowed=OURS) -> None:
    found = problems(text_, allowed=allowed) + block_problems(blocks, allowed=allowed)
    assert not found, (where, found, text_, blocks)


@settings(max_examples=150, deadline=None)
@given(requests(), principals(), ADVERSARIAL)
def test_every_builder_keeps_what_was_written_inert(pair, actors, error):
    evil, safe = pair
    evil_actor = actors[0].slack_id or actors[0].email or f'pipeline:{actors[0].pipeline}'
    safe_actor = actors[1].slack_id or actors[1].email or f'pipeline:{actors[1].pipeline}'
    built, twin = surfaces(evil, evil_actor), surfaces(safe, safe_actor)
    # An audit event without a request: a rejected policy (its problems quote the file) from a commit.
    policy_event = {'seq': 8, 'event': 'policy.loaded', 'actor': 'jit', 'policy_version': 'v2', 'outcome': 'rejected',
                    'error': error, 'detail': {'commit': error}}  # fmt: skip
    built['audit line for a policy'] = (audit_line(policy_event), [])
    harmless_event = policy_event | {'error': harmless(error), 'detail': {'commit': harmless(error)}}
    twin['audit line for a policy'] = (audit_line(harmless_event), [])
    for where, (text_, blocks) in built.items():
        assert_inert(where, text_, blocks)
        assert skeleton(text_) == skeleton(twin[where][0]), (where, text_, twin[where][0])
        assert block_skeleton(blocks) == block_skeleton(twin[where][1]), (where, blocks, twin[where][1])


@settings(max_examples=300, deadline=None)
@given(ADVERSARIAL, st.integers(1, 3000))
def test_text_is_one_inert_line_that_reads_as_written(value, limit):
    shown = text(value, limit)
    assert not problems(shown) and skeleton(shown) == ((),) and len(shown) <= limit
    # What a reader sees (entities decoded, look-alikes read back) is what was written, or its beginning.
    back = str.maketrans({'\u2217': '*', '\u02cd': '_', '\u223c': '~', '\u02cb': '`', '\u203a': '>'})
    seen = html.unescape(shown).translate(back)
    written = ' '.join(re.sub('[\x00-\x1f\x7f-\x9f\u2028\u2029]', ' ', re.sub(
        '[\u061c\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]', '', value)).split())  # fmt: skip
    written = re.sub('[\ud800-\udfff]', '\ufffd', written).translate(back)
    assert seen == written or (seen.endswith(ELLIPSIS) and written.startswith(seen[:-1].rstrip())), (seen, written)


@given(ADVERSARIAL)
def test_code_is_one_code_span_with_nothing_live_inside(value):
    shown = code(value)
    assert not problems(shown) and '\n' not in shown
    assert shown.startswith('`') and shown.endswith('`') and shown.count('`') == 2


@given(ADVERSARIAL)
def test_a_refusal_echoing_anything_has_nothing_live(value):
    denied = denial_answer(f'Not filed: there is no resource called `{value}`.', None)
    for shown in (refusal(f'No request has the ID `{value}`.'), refusal(f'No request has the ID {value}.'),
                  message(value), denied):  # fmt: skip
        assert not problems(shown), shown
        assert len(shown) <= MAX_TEXT


@given(st.one_of(ADVERSARIAL, NAMES), st.one_of(ADVERSARIAL, NAMES))
def test_typed_names_are_refused_unless_plain_and_then_echoed_inert(resource, role):
    """``/jit request RESOURCE ROLE``: a word that cannot be a name is refused before any lookup, without being
    echoed; a plain one comes back in a code span, with the markup of any other name."""
    if not (TYPED_NAME.fullmatch(resource) and TYPED_NAME.fullmatch(role)):
        with pytest.raises(UsageError) as refused:
            _readable(resource, role)
        assert str(refused.value) == UNREADABLE  # the same words whatever was typed: nothing is echoed
        return
    for words in ((resource, role), ('x', role), (resource, 'x')):
        decision = evaluate(POLICY, REQUESTER, words[0], words[1], reason='because')
        shown = denial_answer(f'Not filed: {decision.reason}.', decision)
        assert not problems(shown), shown
    plain = denial_answer(f'Not filed: {evaluate(POLICY, REQUESTER, "x", "y", reason="r").reason}.', None)
    assert skeleton(denial_answer(f'Not filed: {evaluate(POLICY, REQUESTER, resource, "y", reason="r").reason}.',
                                  None)) == skeleton(plain)  # fmt: skip


@given(st.dictionaries(ADVERSARIAL, ADVERSARIAL, max_size=4))
def test_access_details_show_every_value_as_it_is_and_nothing_live(details):
    shown = details_text(AccessRequest(id='r-abcd2345', requester=REQUESTER, resource='app', role='read',
                                       duration=60, reason='', rule='app-read', policy_version='v1', created_at=NOW),
                         details)  # fmt: skip
    assert not problems(shown), shown
    for value in details.values():
        kept = re.sub(
            '[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u061c\u200b\u200e\u200f\u202a-\u202e'
            '\u2060-\u2064\u2066-\u2069\ufeff]',
            '',
            re.sub('[\ud800-\udfff]', '\ufffd', value),
        )
        if '```' not in kept:  # nothing shows three backticks in a row: those alone become look-alikes
            assert html.escape(kept, quote=False) in shown


@given(st.lists(st.one_of(st.sampled_from(['<@U0REQ>', '*Reason:* ', ' · ', '\n']), ADVERSARIAL.map(text),
                          ADVERSARIAL.map(code)), max_size=30), st.integers(1, 3000))  # fmt: skip
def test_cut_never_leaves_half_an_escape_or_half_a_mention(parts, limit):
    shown = cut(''.join(parts), limit)
    assert len(shown) <= limit and not problems(shown, allowed=OURS), shown


def test_mentions_come_only_from_verified_user_ids():
    assert mention(REQUESTER) == '<@U0REQ>' and user('U0APPR') == '<@U0APPR>'
    for bad in ('U0REQ\n', 'U0REQ>', 'u0req', '<!channel>', 'U0REQ|boss', 'C0AUDIT'):
        assert '<' not in mention(Principal(slack_id=bad)) + user(bad)
    assert mention(Principal(pipeline='<!here>')) == 'pipeline:&lt;!here&gt;'
    assert mention(None, nobody='policy') == 'policy'


def test_markup_characters_show_as_look_alikes_and_snake_case_stays():
    shown = text('*bold* _it_ ~st~ `code` snake_case_name')
    assert shown == '\u2217bold\u2217 \u02cdit\u02cd \u223cst\u223c \u02cbcode\u02cb snake_case_name'
    assert text('a\n:white_check_mark: Approved by <@U0DEC>') == 'a :white_check_mark: Approved by &lt;@U0DEC&gt;'
    assert text('&lt;!here&gt; R&D') == '&amp;lt;!here&amp;gt; R&amp;D'
    assert text('> quoted') == '\u203a quoted' and text('\u202eevil\u200b') == 'evil'
    assert text('&' * 10_000, 11) == '&amp;&amp;…'  # never `&am`


def test_the_request_modal_and_resources_answer_show_policy_text_inert():
    """The policy's own words (a description with a mention and a link) are shown as text too."""
    shown = resources_answer(POLICY, REQUESTER)
    assert not problems(shown, allowed=OURS), shown
    modal = build_request_modal(requestable(POLICY, REQUESTER))
    assert not block_problems(modal, allowed=OURS)


@given(ADVERSARIAL)
def test_typed_text_decodes_slacks_entities_once_and_shows_again_as_typed(value):
    """Slack sends a command's ``& < >`` as entities: decoded once, then escaped once, it reads as typed."""
    sent = value.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')
    assert typed(sent) == value
    assert typed('R&amp;D &amp;lt;b&amp;gt; &quot;') == 'R&D &lt;b&gt; &quot;'
