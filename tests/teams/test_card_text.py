"""Text someone wrote never turns into markup, a link, a mention or a line of its own on a Teams card.

Teams renders markdown in a TextBlock and a FactSet, not in a RichTextBlock's TextRuns. So the checks: the cards
have no element that renders markdown; every string that carries what a user, a pipeline or the policy wrote is
the text of a TextRun; a card built from hostile text has the very shape of one built from harmless text (no
extra element, run, style or action); and no string holds a line break, a control character, or one that
reorders or hides text. Long texts are cut with an ellipsis.
"""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.blocks.mrkdwn import one_line
from bot.core.model import Principal, RequestStatus
from bot.core.progress import outcome_text
from bot.teams.card import REASON_CHARS, approval_card, breakglass_card, outcome_card
from tests.teams.cards import APPROVE_URL, DENY_URL, RULE, a_request, card, nodes, runs, strings, validate

HOSTILE = {
    'markdown': '**bold** _it_ ~~gone~~ `code` # Big\n- item\n> quote',
    'link': '[Approve here](https://evil.example/steal) https://evil.example/bare',
    'mention': '<at>everyone</at> <at id="0">CEO</at>',
    'lines': 'fine\r\nApproved by: the CISO\nRule: none\u2028Status: approved',
    'bidi': 'invoice\u202egpj.exe\u202c and \u2066isolated\u2069 \u200fmark',
    'invisible': 'ad\u200bmin\ufeff\u2060',
    'html': '<b>x</b> &amp; <script>alert(1)</script>',
    'controls': 'a\x00b\x1bc\x7fd\x85e\tf',
    'long': 'A' * 10_000,
}
#: Pieces of the hostile texts that must show nowhere but in a TextRun's text.
MARKERS = ['**bold**', 'Approve here', 'evil.example', '<at>', 'the CISO', '<script>', '# Big', 'gpj.exe', 'AAAAAAAAAA']
#: Line breaks, control characters (C0, C1, DEL), and characters that reorder or hide text.
UNSAFE = re.compile(
    '[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]'
)
#: The elements the cards may use: none of them renders markdown.
INERT = {'AdaptiveCard', 'RichTextBlock', 'TextRun', 'Action.OpenUrl'}


def with_text(value: str) -> list[dict]:
    """Every card, with ``value`` in every place that takes text from outside jit's code."""
    person = Principal(slack_id='U0ALEX', email=f'{value}@example.com', name=value)
    rule = dataclasses.replace(RULE, name=value)
    request = a_request(requester=person, reason=value, ticket=value, resource=value, role=value, rule=value,
                        decided_by=Principal(email=value, name=value), deny_reason=value)  # fmt: skip
    extension = dataclasses.replace(request, extends=value)
    urls = {'approve_url': APPROVE_URL, 'deny_url': DENY_URL}
    return [
        approval_card(request, rule, waiting=value, **urls),
        approval_card(extension, rule, waiting=value, **urls),
        *(outcome_card(ended, rule, outcome=outcome_text(ended))
          for ended in (dataclasses.replace(request, status=RequestStatus(s)) for s in ('approved', 'denied'))),
        outcome_card(request, None, outcome=f'Denied by {value}: {value}'),
        breakglass_card(request, rule),
    ]  # fmt: skip


def skeleton(payload: dict) -> dict:
    """The card with the text of every run blanked: its elements, runs, styles and actions."""
    out = json.loads(json.dumps(payload))
    for node in nodes(out):
        if node.get('type') == 'TextRun':
            node['text'] = '-'
    return out


HARMLESS = [skeleton(p) for p in with_text('harmless words')]


@pytest.mark.parametrize('kind', sorted(HOSTILE))
def test_hostile_text_is_only_ever_the_text_of_a_run(kind):
    for payload in with_text(HOSTILE[kind]):
        content = card(payload)
        assert {n['type'] for n in nodes(content) if 'type' in n} <= INERT, 'an element that renders markdown'
        for holder, key, value in strings(content):
            if any(marker in value for marker in MARKERS):
                assert (holder or {}).get('type') == 'TextRun' and key == 'text', (holder, key, value[:80])


@pytest.mark.parametrize('kind', sorted(HOSTILE))
def test_hostile_text_adds_no_element_run_style_or_action(kind):
    """The same card as from harmless words: a line break cannot start a new "Approved by" line, a link cannot
    become an action, markup cannot become a style."""
    assert [skeleton(p) for p in with_text(HOSTILE[kind])] == HARMLESS


@pytest.mark.parametrize('kind', sorted(HOSTILE))
def test_no_string_holds_a_line_break_a_control_or_an_invisible_character(kind):
    for payload in with_text(HOSTILE[kind]):
        bad = [(key, value[:60]) for _, key, value in strings(card(payload)) if UNSAFE.search(value)]
        assert bad == []


def test_lines_are_flattened_not_dropped():
    reason_runs = [r for r in runs(with_text(HOSTILE['lines'])[0]) if 'CISO' in r]
    assert 'fine Approved by: the CISO Rule: none Status: approved' in reason_runs
    bidi = runs(with_text(HOSTILE['bidi'])[0])
    assert 'invoicegpj.exe and isolated mark' in bidi


def test_long_text_is_cut_with_an_ellipsis():
    payload = with_text(HOSTILE['long'])[0]
    texts = runs(payload)
    reason = texts[texts.index('Reason: ') + 1]
    assert len(reason) == REASON_CHARS and reason.endswith('…')
    assert max(map(len, texts)) <= REASON_CHARS
    assert len(json.dumps(payload).encode()) < 28_000  # Teams takes about 28 KB a message


@pytest.mark.parametrize('kind', sorted(HOSTILE))
def test_cards_with_hostile_text_are_schema_valid(kind):
    """The approval card and the denial (between them every place that takes text); the other cards have the
    shape of their harmless twins, which tests/teams/test_card_schema.py validates, and the schema takes any
    string as a run's text."""
    payloads = with_text(HOSTILE[kind])
    for payload in (payloads[0], payloads[3], payloads[4]):
        validate(payload)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_makes_a_card_with_nothing_unsafe(value):
    for payload in with_text(value):
        assert not [v for _, _, v in strings(card(payload)) if UNSAFE.search(v)]
        assert {n['type'] for n in nodes(card(payload)) if 'type' in n} <= INERT


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=300).filter(one_line))
def test_any_visible_text_makes_a_card_of_the_same_shape(value):
    """(Text with nothing visible in it is no reason and no ticket: those cards say "none given" instead.)"""
    assert [skeleton(p) for p in with_text(value)] == HARMLESS
