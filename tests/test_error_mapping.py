"""Errors mapped in one place per surface, and a bug answered with an apology whose error ID is in the log.

The unexpected errors are real: the unmodified Bolt app and the API over real HTTP, the local Slack, a real
Redis, and a use case that fails the way a bug would (handed in as a dependency, nothing patched).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import structlog

from bot.api import errors as api_errors
from bot.app import create_web_app
from bot.core.errors import (
    IdentityRefused,
    InvalidTransition,
    NotAnApprover,
    PolicyConfigError,
    PolicyDenied,
    RequestError,
    RequestNotFound,
    SlackUnavailable,
    TooManyRequests,
    UsageError,
)
from bot.deps import build_deps
from bot.listeners import errors as slack_errors
from bot.sandbox.local_slack import LocalSlack
from bot.sandbox.workspace import seed_workspace
from bot.settings import load_settings
from tests.support.redis_server import own_redis_url
from tests.support.served import Served

SECRET = 'mapping-signing-secret'
TOKEN = 'mapping-pipeline-token-0123456789'
POLICY = """\
groups:
  devops: [alex@example.com]
  leads: [sam@example.com]
resources:
  demo-app:
    provider: webhook
    settings: {url: 'http://127.0.0.1:9/none'}
    roles: [read]
requests:
  - name: demo-read
    resources: [demo-app]
    roles: [read]
    requesters: [group:devops, pipeline:deploy]
    approvers: [group:leads]
    timeout: 2h
"""
TOKEN_HASH = 'sha256:' + hashlib.sha256(TOKEN.encode()).hexdigest()
APPROVE = {'type': 'actions', 'elements': [{'type': 'button', 'action_id': 'jit.approve', 'value': 'r-0000abcd',
                                            'text': {'type': 'plain_text', 'text': 'Approve'}}]}  # fmt: skip
ERROR_ID = re.compile(r'error ID `?([0-9a-f]{8})`?')


# -- the mappings, one per surface -----------------------------------------------------------------


@pytest.mark.parametrize(('error', 'status'), [
    (PolicyDenied('no rule'), 403), (IdentityRefused(), 403), (NotAnApprover(), 403), (RequestNotFound(), 404),
    (InvalidTransition(), 409), (TooManyRequests('slow down', retry_after=12.2), 429), (SlackUnavailable(), 503),
    (UsageError('say which'), 400),
])  # fmt: skip
def test_each_refusal_has_one_http_status(error, status):
    answer = api_errors.answer_for(error)
    assert answer.status == status and answer.error == error.user_message
    if status == 429:
        assert answer.headers == {'Retry-After': '13'}


def test_an_error_that_is_not_a_refusal_is_no_http_answer():
    with pytest.raises(TypeError):
        api_errors.answer_for(PolicyConfigError(['policy.yaml:3: bad']))  # a bug at this edge: the guard's 500


def test_a_denial_says_what_may_be_asked_instead_and_other_refusals_warn():
    assert slack_errors.answer_for(PolicyDenied('No rule lets you.')).startswith(':no_entry_sign: No rule lets you.')
    assert slack_errors.answer_for(UsageError('Say which request.')) == ':warning: Say which request.'
    assert slack_errors.refusal_home(IdentityRefused())['blocks'][0]['text']['text'] == IdentityRefused.user_message


def test_usage_errors_are_refusals_like_any_other():
    assert issubclass(UsageError, RequestError)  # mapped with the rest, on every surface


# -- a bug, end to end ---------------------------------------------------------------------------


class Failing:
    """A use case with a bug in it: every call raises what no refusal is."""

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(f'bug in {name}')

        return fail


@pytest.fixture(name='jit')
def _jit(tmp_path: Path) -> Iterator[tuple[LocalSlack, Served, Any]]:
    (tmp_path / 'policy.yaml').write_text(POLICY)
    slack = LocalSlack(workspace=seed_workspace(), signing_secret=SECRET)
    slack.start_in_thread()
    settings = load_settings({
        'SLACK_BOT_TOKEN': slack.bot_token, 'SLACK_SIGNING_SECRET': SECRET, 'SLACK_API_URL': slack.api_url,
        'REDIS_URL': own_redis_url(20), 'JIT_POLICY_DIR': str(tmp_path), 'JIT_API_TOKENS': f'deploy:{TOKEN_HASH}',
    })  # fmt: skip
    deps = build_deps(settings, providers=['webhook'])
    deps.redis.flushdb()
    buggy = replace(deps, approve=Failing(), submit=Failing())
    served = Served(create_web_app(buggy))
    slack.app_url = f'http://127.0.0.1:{served.port}/slack/events'
    yield slack, served, deps
    served.stop()
    slack.stop_thread()
    deps.redis.flushdb()


def _logged_ids(logs: list[dict[str, Any]], event: str) -> list[str]:
    return [line['error_id'] for line in logs if line.get('event') == event]


def test_a_bug_behind_a_slash_command_is_answered_with_an_apology_and_the_logs_error_id(jit):
    slack, _, _ = jit
    with structlog.testing.capture_logs() as logs:
        reply = slack.driver.slash('U0ALEX', 'request demo-app read 20m checking')
    assert reply.status == 200, reply.body
    shown = ERROR_ID.search(reply.text or '')
    assert shown is not None and 'Sorry' in (reply.text or ''), reply.text
    assert 'bug in' not in reply.body and 'Traceback' not in reply.body
    assert _logged_ids(logs, 'listener.unexpected_error') == [shown.group(1)]


def test_a_bug_behind_a_button_is_told_beside_it_with_the_logs_error_id(jit):
    slack, _, _ = jit
    message = slack.workspace.post(slack.workspace.dm_channel_id('U0SAM'), 'approve?', [APPROVE])
    with structlog.testing.capture_logs() as logs:
        reply = slack.driver.click('U0SAM', message, 'jit.approve')
        told = slack.workspace.wait_for_message(lambda m: m.ephemeral_for == 'U0SAM' and 'error ID' in m.text, 10)
    assert reply.status == 200
    shown = ERROR_ID.search(told.text)
    assert shown is not None and _logged_ids(logs, 'listener.unexpected_error') == [shown.group(1)]


def test_a_bug_behind_the_api_is_a_500_with_the_logs_error_id_and_no_traceback(jit):
    _, served, _ = jit
    body = json.dumps({'resource': 'demo-app', 'role': 'read', 'duration': '10m', 'reason': 'deploy'}).encode()
    headers = {'Authorization': f'Bearer {TOKEN}', 'Content-Type': 'application/json'}
    call = urllib.request.Request(f'http://127.0.0.1:{served.port}/api/v1/requests', body, headers, method='POST')
    with structlog.testing.capture_logs() as logs, pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(call, timeout=10)
    assert answer.value.code == 500
    problem = json.loads(answer.value.read())
    assert 'bug in' not in json.dumps(problem) and problem['error'].startswith('Sorry')
    assert _logged_ids(logs, 'api.unexpected_error') == [problem['error_id']]


def test_a_form_that_cannot_open_in_time_is_told_to_whoever_typed_the_command(jit):
    """Slack took too long (the trigger expired): the user who typed `/jit` is told where they typed it."""
    slack, _, _ = jit
    slack.trigger_ttl = 0
    reply = slack.driver.slash('U0ALEX', 'request')
    assert reply.status == 200 and not reply.text
    told = slack.workspace.wait_for_message(lambda m: m.ephemeral_for == 'U0ALEX' and 'in time' in m.text, 10)
    assert told.channel == slack.workspace.dm_channel_id('U0ALEX') and 'type `/jit` again' in told.text


def test_a_body_not_in_the_coding_it_claims_is_a_400_on_every_surface(jit):
    """A Content-Encoding of gzip or deflate over bytes that are not, or over bytes that are: no body is read in a
    coding (one that is not what it claims kept the API's read waiting, 2 runs in 15, until the client gave up).
    The Slack endpoint (signed or not) and the API answer their 400 at once, never a 500."""
    slack, served, _ = jit
    body = 'command=%2Fjit&text=hello&user_id=U0ALEX'
    really = urllib.request.Request(f'http://127.0.0.1:{served.port}/api/v1/requests',
                                    gzip.compress(b'{"resource": "demo-app"}'), {
                                        'Authorization': f'Bearer {TOKEN}', 'Content-Type': 'application/json',
                                        'Content-Encoding': 'gzip'}, method='POST')  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(really, timeout=10)
    assert answer.value.code == 400 and 'Content-Encoding' in answer.value.read().decode()
    for coding in ('gzip', 'deflate', 'br', 'identity, gzip'):
        signed = slack.driver.post_raw(body, {**slack.driver.sign(body), 'Content-Encoding': coding,
                                              'Content-Type': 'application/x-www-form-urlencoded'})  # fmt: skip
        assert signed.status == 400, (coding, signed.status, signed.body)
        headers = {'Authorization': f'Bearer {TOKEN}', 'Content-Type': 'application/json', 'Content-Encoding': coding}
        call = urllib.request.Request(f'http://127.0.0.1:{served.port}/api/v1/requests', b'{"not": "gzip"}',
                                      headers, method='POST')  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(call, timeout=10)
        assert answer.value.code == 400, (coding, answer.value.code, answer.value.read())
