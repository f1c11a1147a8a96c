"""Numbers in what people type after ``/jit``: a duration far too large is a usage message, never filed with
the rule's default duration in its place, nor an unexpected error. And the examples ``/jit help`` shows work
where they are shown: they name a resource and role of the policy in force."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.commands import UsageError, example_request, help_text, parse_extend_args, parse_request_args
from bot.core.model import Principal
from bot.core.policy import DecisionKind, evaluate
from bot.core.policy_loader import build_policy, read_policy_dir
from tests.core.policy_fixtures import policy as prod_policy

EXAMPLE_POLICY = Path(__file__).resolve().parents[2] / 'policies'

HUGE = '9' * 5000
POLICY = """\
groups:
  devops: [alex@example.com]
resources:
  demo-app:
    provider: webhook
    settings: {url: 'http://127.0.0.1:9/grant', secret: x}
    roles: [read, deploy]
requests:
  - name: demo-read
    resources: [demo-app]
    requesters: [group:devops]
    approvers: [group:devops]
    timeout: 2h
"""


@pytest.fixture(name='policy')
def _policy():
    return build_policy({'p.yaml': POLICY})


@pytest.mark.parametrize('text', [f'demo-app read {HUGE}h why', f'demo-app {HUGE}h why', f'nope read {HUGE}m why',
                                  'demo-app read 99999999999h why', 'demo-app read 3651d why'])  # fmt: skip
def test_request_with_a_duration_too_long_is_a_usage_error(policy, text):
    with pytest.raises(UsageError) as refused:
        parse_request_args(text, policy)
    assert 'too long' in str(refused.value) and len(str(refused.value)) < 200


def test_request_durations_that_fit_still_parse(policy):
    assert parse_request_args('demo-app read 2h why not', policy).duration == 7200
    assert parse_request_args('demo-app read 3650d why', policy).duration == 3650 * 86400
    args = parse_request_args(f'demo-app read {HUGE} unit-less number', policy)
    assert (args.duration, args.reason) == (None, f'{HUGE} unit-less number'), 'a bare number is part of the reason'


@pytest.mark.parametrize('text', [f'r-abcd2345 {HUGE}m', 'r-abcd2345 99999999999h more', f'r-abcd2345 {"1d" * 4000}'])
def test_extend_with_a_duration_too_long_is_a_usage_error(text):
    with pytest.raises(UsageError) as refused:
        parse_extend_args(text)
    assert 'too long' in str(refused.value) and len(str(refused.value)) < 200


def test_the_help_of_the_example_policy_names_what_the_sandbox_has_and_alex_may_file_it():
    example = build_policy(read_policy_dir(EXAMPLE_POLICY))
    shown = help_text(example)
    assert 'prod-db' not in shown and '`/jit request demo-app read 30m debugging INC-4711`' in shown
    typed = example_request(example).strip('`').removeprefix('/jit request ')
    args = parse_request_args(typed, example)
    assert (args.resource, args.role, args.duration) == ('demo-app', 'read', 1800)
    decision = evaluate(example, Principal(slack_id='U0ALEX', email='alex@example.com'), args.resource, args.role,
                        duration=args.duration, reason=args.reason)  # fmt: skip
    assert decision.kind is DecisionKind.NEEDS_APPROVAL, decision


def test_the_examples_follow_the_policy_in_force():
    assert '`/jit request prod-db read 30m' in help_text(prod_policy())
    empty = build_policy({'p.yaml': 'groups: {devops: [alex@example.com]}\n'})
    assert '`/jit request demo-app read 30m' in help_text(empty)
    with pytest.raises(UsageError) as refused:
        parse_request_args('', build_policy({'p.yaml': POLICY}))
    assert 'e.g. `/jit request demo-app read 30m debugging INC-4711`.' in str(refused.value)
