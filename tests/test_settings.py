"""Settings: every problem named at once; Socket Mode needs no signing secret; the request limits."""

from __future__ import annotations

import pytest

from bot.core.errors import ConfigError
from bot.settings import load_settings

BASE = {'SLACK_BOT_TOKEN': 'xoxb-1', 'SLACK_SIGNING_SECRET': 's'}


def test_defaults():
    settings = load_settings(BASE)
    assert (settings.requests_per_hour, settings.max_open_requests, settings.slack_app_token) == (20, 5, None)


def test_socket_mode_needs_no_signing_secret_http_does():
    settings = load_settings({'SLACK_BOT_TOKEN': 'xoxb-1', 'SLACK_APP_TOKEN': 'xapp-1-a'})
    assert settings.slack_app_token == 'xapp-1-a'
    with pytest.raises(ConfigError) as refused:
        load_settings({'SLACK_BOT_TOKEN': 'xoxb-1'})
    assert 'SLACK_SIGNING_SECRET is not set' in refused.value.user_message


def test_every_bad_setting_is_named_at_once():
    with pytest.raises(ConfigError) as refused:
        load_settings({**BASE, 'SLACK_APP_TOKEN': 'xoxb-wrong-kind', 'JIT_REQUESTS_PER_HOUR': 'lots',
                       'JIT_MAX_OPEN_REQUESTS': '2.5'})  # fmt: skip
    assert refused.value.problems == [
        'SLACK_APP_TOKEN must be an app-level token starting with xapp-',
        "JIT_REQUESTS_PER_HOUR='lots' is not a number",
        "JIT_MAX_OPEN_REQUESTS='2.5' must be a whole number",
    ]


def test_zero_turns_a_limit_off():
    settings = load_settings({**BASE, 'JIT_REQUESTS_PER_HOUR': '0', 'JIT_MAX_OPEN_REQUESTS': '0'})
    assert (settings.requests_per_hour, settings.max_open_requests) == (0, 0)


@pytest.mark.parametrize('key', ['PORT', 'JIT_REQUESTS_PER_HOUR', 'JIT_MAX_OPEN_REQUESTS', 'JIT_SWEEP_INTERVAL',
                                 'JIT_AUDIT_S3_RETENTION_DAYS'])  # fmt: skip
@pytest.mark.parametrize('value', ['1e999', 'nan', '-inf', 'Infinity', '9' * 5000])
def test_numbers_that_are_not_finite_are_named_not_a_traceback(key, value):
    """float() reads inf and nan (and 1e999 as inf): each is a problem named like any other, not an
    OverflowError or ValueError from int() at start-up."""
    with pytest.raises(ConfigError) as refused:
        load_settings({**BASE, key: value})
    [problem] = refused.value.problems
    assert problem.startswith(key) and len(problem) < 200, problem[:300]
