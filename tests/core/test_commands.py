"""Numbers in what people type after ``/jit``: a duration far too large is a usage message, never filed with
the rule's default duration in its place, nor an unexpected error."""

from __future__ import annotations

import pytest

from bot.core.commands import UsageError, parse_extend_args, parse_request_args
from bot.core.policy_loader import build_policy

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
