"""A rule's ``ticket_pattern`` meets text a requester typed: matching it is bounded whatever either says.

The pattern is policy text (reviewed, but possibly by someone who did not see ``(x+)+`` for what it is),
the reason is the requester's. With a backtracking engine, 25 letters and a ``!`` held the interpreter for
seconds, in ``jit serve`` (every ack waited) and in the worker's re-check (every revoke waited); each letter
more doubled it. Patterns are matched in linear time, against words of bounded length, and a pattern that
cannot be is refused when the policy loads, at its ``file:line:column``.
"""

from __future__ import annotations

import time

import pytest

from bot.core.errors import PolicyConfigError
from bot.core.model import Principal
from bot.core.policy import MAX_TICKET_LENGTH, MAX_TICKET_PATTERN_LENGTH, DecisionKind, evaluate
from bot.core.policy_loader import build_policy

ALEX = Principal(slack_id='U0ALEX', email='alex@example.com')
POLICY = """\
resources:
  db: {provider: webhook, settings: {url: 'http://127.0.0.1:9/x', secret: env:S}, roles: [read]}
requests:
  - name: db-read
    approvers: [sam@example.com]
    ticket_pattern: PATTERN
"""
#: The line and column of ``ticket_pattern`` in POLICY.
PATTERN_AT = '6:5'


def policy_with(pattern: str):
    return build_policy({'p.yaml': POLICY.replace('PATTERN', pattern)})


def problems_with(pattern: str) -> list[str]:
    with pytest.raises(PolicyConfigError) as info:
        policy_with(pattern)
    return info.value.problems


def timed(policy, **kwargs):
    started = time.monotonic()
    decision = evaluate(policy, ALEX, 'db', 'read', 600, **kwargs)
    return decision, time.monotonic() - started


@pytest.mark.parametrize('pattern', [r"'^([A-Z0-9]+-?)+$'", r"'^(\w+\s?)*$'", r"'^(a|a)+$'", r"'(x+x+)+y'"])
@pytest.mark.parametrize('letters', [25, 5000])
def test_a_backtracking_pattern_cannot_hold_the_interpreter(pattern, letters):
    """25 letters and a '!' took 2 s against `^([A-Z0-9]+-?)+$` (each letter more doubled it): now microseconds,
    whatever the pattern and however many letters, and a ticket later in the reason is still found."""
    policy = policy_with(pattern)
    word = ('a' if 'a|a' in pattern else 'x' if 'x+' in pattern else 'A') * letters
    decision, spent = timed(policy, reason=f'{word}! {word}! INC-1')
    assert spent < 0.5, f'evaluate took {spent:.1f}s'
    decision, spent = timed(policy, ticket=f'{word}!')
    assert spent < 0.5, f'evaluate took {spent:.1f}s'
    assert decision.kind is DecisionKind.DENIED


def test_the_ticket_is_still_found_in_the_reason():
    decision, _ = timed(policy_with(r"'^([A-Z0-9]+-?)+$'"), reason='AAAAAAAAAAAAAAAAAAAAAAAAA! INC-1')
    assert (decision.kind, decision.ticket) == (DecisionKind.NEEDS_APPROVAL, 'INC-1')


def test_a_word_longer_than_a_ticket_is_not_a_ticket():
    """A ticket is short: a word (or a ticket field) of more than MAX_TICKET_LENGTH characters is never matched,
    so no pattern ever runs over a long text."""
    policy = policy_with("'^INC-[0-9]+$'")
    long = 'INC-' + '1' * MAX_TICKET_LENGTH
    decision, _ = timed(policy, reason=f'see {long}')
    assert decision.kind is DecisionKind.DENIED
    assert 'requires a ticket matching' in decision.reason
    decision, _ = timed(policy, ticket=long)
    assert decision.kind is DecisionKind.DENIED
    assert f'at most {MAX_TICKET_LENGTH} characters' in decision.reason
    fits = 'INC-' + '1' * (MAX_TICKET_LENGTH - 4)
    assert timed(policy, reason=f'see {fits}')[0].ticket == fits
    assert timed(policy, ticket=fits)[0].ticket == fits


def test_text_that_is_not_valid_unicode_is_not_a_ticket_and_not_an_error():
    """A lone surrogate (JSON can carry one) cannot be matched as UTF-8: that word is skipped, never a traceback."""
    policy = policy_with("'^INC-[0-9]+$'")
    assert timed(policy, reason='INC-1\ud800 INC-2')[0].ticket == 'INC-2'
    decision, _ = timed(policy, ticket='INC-1\ud800')
    assert decision.kind is DecisionKind.DENIED


@pytest.mark.parametrize(('pattern', 'words'), [
    (r"'(?=INC)[A-Z]+-[0-9]+'", 'look-ahead'),
    (r"'(?<!X)INC-[0-9]+'", 'look-behind'),
    (r"'([A-Z]+)-\1'", 'backreference'),
    (r"'(?P<p>INC)-(?P=p)'", 'backreference'),
    (r"'INC-[0-9]+\Z'", r'\z'),
    (r"'(?>INC)-[0-9]+'", 'atomic'),
    (r"'INC-[0-9]++'", 'possessive'),
    ("'(INC|CHG'", 'missing )'),
    ("'(['", 'missing ]'),
    ("'((a{100}){100}){100}'", 'repetition'),
    ("'[a-z]{1001}'", 'repetition'),
    ("'INC-[0-9]{,6}'", 'write `{0,6}`'),  # Python reads a count, RE2 the text `{,6}`: said, not guessed
])  # fmt: skip
def test_a_pattern_that_cannot_be_matched_in_linear_time_is_refused_where_it_is_written(pattern, words):
    """Compiled when the policy loads: refused at the value's file:line:column, saying why and what to write."""
    problems = problems_with(pattern)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f'p.yaml:{PATTERN_AT}: `ticket_pattern` of rule `db-read`'), problems
    assert words in problems[0], problems


@pytest.mark.parametrize(('value', 'words'), [
    ('12', 'must be text'),
    ('[INC, CHG]', 'must be text'),
    ("''", 'empty'),
    (repr('x' * (MAX_TICKET_PATTERN_LENGTH + 1)), f'at most {MAX_TICKET_PATTERN_LENGTH} characters'),
])  # fmt: skip
def test_a_pattern_that_is_not_short_text_is_refused(value, words):
    problems = problems_with(value)
    assert len(problems) == 1 and problems[0].startswith(f'p.yaml:{PATTERN_AT}: '), problems
    assert words in problems[0], problems


@pytest.mark.parametrize(('pattern', 'ticket', 'matches'), [
    (r"'^(INC|CHG)-[0-9]+$'", 'CHG-12', True),
    (r"'^(INC|CHG)-[0-9]+$'", 'CHG-12x', False),
    (r"'(?i)^inc-\d+$'", 'INC-7', True),
    (r"'^[A-Z]{2,10}-\d{1,6}$'", 'JIRA-123456', True),
    (r"'^(?P<project>[A-Z]+)-(?P<number>\d+)$'", 'OPS-1', True),
    (r"'^INC-\d+$'", 'INC-\u0661\u0662', False),  # a ticket's digits are ASCII digits
    (r"'^INC-\d+$'", 'INC-1\n', False),
    (r"'INC'", 'xINCx', True),  # searched, not anchored, as before
])  # fmt: skip
def test_ordinary_patterns_mean_what_they_say(pattern, ticket, matches):
    decision, _ = timed(policy_with(pattern), ticket=ticket)
    assert (decision.ticket == ticket) is matches
