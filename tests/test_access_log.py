"""One ``http.request`` line per request ``jit serve`` answers, and an ``X-Request-ID`` that its other lines carry
(``bot.access_log``): over real HTTP to the unmodified web app, with a local Slack and a real Redis.

The lines are captured with ``merge_contextvars``, as ``jit serve`` renders them, so a bound ID shows where
the process's log would show it.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from bot.app import create_web_app
from bot.deps import build_deps
from bot.links import LinkSigner
from bot.sandbox.local_slack import LocalSlack
from bot.settings import load_settings
from tests.support.log_capture import capture_logs
from tests.support.redis_server import own_redis_url
from tests.support.served import Served
from tests.support.slack import local_slack

pytestmark = pytest.mark.redis

SECRET = 'access-log-signing-secret'
TOKEN = 'access-log-pipeline-token-0123456789'
BODY_TEXT = 'hunter2-in-the-body'
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
    requesters: [group:devops]
    approvers: [group:leads]
    timeout: 2h
  - name: deploy-read
    resources: [demo-app]
    roles: [read]
    requesters: [pipeline:deploy]
    trigger: pipeline
    approvers: [group:leads]
    timeout: 2h
"""
NEW_ID = re.compile(r'[0-9a-f]{32}')
#: What an ``http.request`` line may hold: nothing of a header, a query string or a body.
ACCESS_FIELDS = {'event', 'log_level', 'method', 'path', 'status', 'duration_ms', 'http_request_id'}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes = field(repr=False)

    @property
    def request_id(self) -> str:
        return id_of(self.headers)


def id_of(headers: dict[str, str]) -> str:
    """The answer's ``X-Request-ID`` (urllib keeps the header names as sent)."""
    return {name.lower(): value for name, value in headers.items()}['x-request-id']


def call(port: int, path: str, *, method: str = 'GET', body: bytes | None = None, **headers: str) -> Answer:
    request = urllib.request.Request(f'http://127.0.0.1:{port}{path}', body, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return Answer(answer.status, dict(answer.headers), answer.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, dict(error.headers), error.read())


def settings_for(slack: LocalSlack, policy_dir: Path, **more: str) -> Any:
    (policy_dir / 'policy.yaml').write_text(POLICY)
    return load_settings({
        'SLACK_BOT_TOKEN': slack.bot_token, 'SLACK_SIGNING_SECRET': SECRET, 'SLACK_API_URL': slack.api_url,
        'REDIS_URL': own_redis_url(22), 'JIT_POLICY_DIR': str(policy_dir),
        'JIT_API_TOKENS': 'deploy:sha256:' + hashlib.sha256(TOKEN.encode()).hexdigest(), **more,
    })  # fmt: skip


@pytest.fixture(name='jit')
def _jit(tmp_path: Path) -> Iterator[tuple[LocalSlack, Served]]:
    with local_slack(SECRET) as slack:
        deps = build_deps(settings_for(slack, tmp_path), providers=['webhook'])
        deps.redis.flushdb()
        served = Served(create_web_app(deps))
        slack.app_url = f'http://127.0.0.1:{served.port}/slack/events'
        try:
            yield slack, served
        finally:
            served.stop()
            deps.redis.flushdb()


def access_lines(lines: list[dict[str, Any]], request_id: str | None = None) -> list[dict[str, Any]]:
    return [line for line in lines if line['event'] == 'http.request'
            and (request_id is None or line['http_request_id'] == request_id)]  # fmt: skip


def wait_for(lines: list[dict[str, Any]], event: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [line for line in lines if line['event'] == event]
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f'no {event} line in {lines}')


def test_each_request_is_one_line_whose_id_the_answer_carries(jit):
    """An API call, a 404 and a health check each leave one line; each answer has its own new ID."""
    _, served = jit
    with capture_logs() as lines:
        shown = call(served.port, '/api/v1/openapi.json')
        missing = call(served.port, '/no/such/page')
    assert (shown.status, missing.status) == (200, 404)
    assert NEW_ID.fullmatch(shown.request_id) and NEW_ID.fullmatch(missing.request_id)
    assert shown.request_id != missing.request_id
    [line] = access_lines(lines, shown.request_id)
    assert line.keys() == ACCESS_FIELDS and line['log_level'] == 'info'
    assert (line['method'], line['path'], line['status']) == ('GET', '/api/v1/openapi.json', 200)
    assert isinstance(line['duration_ms'], float) and 0 <= line['duration_ms'] < 10_000
    [line] = access_lines(lines, missing.request_id)
    assert (line['method'], line['path'], line['status'], line['log_level']) == ('GET', '/no/such/page', 404, 'info')
    assert len(access_lines(lines)) == 2


def test_an_api_call_logs_its_route_and_its_lines_carry_the_id(jit):
    """A pipeline files a request: ``api.filed`` names the access request (``request_id``) and the HTTP one."""
    _, served = jit
    body = json.dumps({'resource': 'demo-app', 'role': 'read', 'duration': '10m', 'reason': BODY_TEXT}).encode()
    with capture_logs() as lines:
        filed = call(served.port, '/api/v1/requests', method='POST', body=body, Authorization=f'Bearer {TOKEN}',
                     **{'Content-Type': 'application/json'})  # fmt: skip
        rid = json.loads(filed.body)['id']
        shown = call(served.port, f'/api/v1/requests/{rid}?wait=1', Authorization=f'Bearer {TOKEN}')
    assert (filed.status, shown.status) == (201, 200), filed.body
    [line] = [line for line in lines if line['event'] == 'api.filed']
    assert line['request_id'] == rid and line['http_request_id'] == filed.request_id
    [line] = access_lines(lines, shown.request_id)
    assert (line['path'], line['status']) == ('/api/v1/requests/{id}', 200)  # the route, not the ID or the query
    assert access_lines(lines, filed.request_id)[0]['status'] == 201


def test_refusals_are_logged_with_the_id_the_answer_gives(jit):
    """No token (401), a forged Slack signature (401), a wrong method (405): each is one line with its
    status, the guard's own line carries the same ID, and the answers are the ones they always were."""
    slack, served = jit
    with capture_logs() as lines:
        no_token = call(served.port, '/api/v1/requests/r-00000000')
        body = f'command=%2Fjit&text={BODY_TEXT}&user_id=U0ALEX'
        forged = slack.driver.post_raw(body, {**slack.driver.sign(body + 'x'),
                                              'Content-Type': 'application/x-www-form-urlencoded'})  # fmt: skip
        wrong_method = call(served.port, '/slack/events')
    assert (no_token.status, forged.status, wrong_method.status) == (401, 401, 405)
    assert json.loads(no_token.body) == {'error': 'missing Authorization: Bearer TOKEN'}
    assert json.loads(forged.body) == {'error': 'invalid signature'}
    forged_id = id_of(forged.headers)
    [api] = [line for line in lines if line['event'] == 'api.rejected']
    [rejected] = [line for line in lines if line['event'] == 'slack.rejected']
    assert api['http_request_id'] == no_token.request_id and rejected['http_request_id'] == forged_id
    statuses = {rid: access_lines(lines, rid) for rid in (no_token.request_id, forged_id, wrong_method.request_id)}
    assert [[line['status'] for line in found] for found in statuses.values()] == [[401], [401], [405]]
    assert access_lines(lines, forged_id)[0].keys() == ACCESS_FIELDS  # nothing of the Slack body


def test_a_slack_requests_lines_carry_its_id_even_after_the_answer(jit):
    """A replayed slash command's ``slack.replayed`` line, and a listener's line written after the ack
    (the form could not open), carry the ID of the request they belong to."""
    slack, _ = jit
    signed = slack.driver._slash('U0ALEX', 'help', '/jit', None)
    slack.trigger_ttl = 0  # the modal's trigger has expired by the time the bot opens it
    with capture_logs() as lines:
        first, again = slack.driver.replay(signed), slack.driver.replay(signed)
        form = slack.driver.slash('U0ALEX', 'request')
        failed = wait_for(lines, 'slack.views_open_failed')
    assert (first.status, again.status, form.status) == (200, 200, 200)
    ids = [id_of(reply.headers) for reply in (first, again, form)]
    assert len(set(ids)) == 3
    [replayed] = [line for line in lines if line['event'] == 'slack.replayed']
    assert replayed['http_request_id'] == ids[1]
    assert failed['http_request_id'] == ids[2] and failed['slack_user'] == 'U0ALEX'
    for rid in ids:
        [line] = access_lines(lines, rid)
        assert line.keys() == ACCESS_FIELDS and (line['path'], line['status']) == ('/slack/events', 200)


@pytest.mark.parametrize('sent', ['lb-7f3a.9_Z', 'a' * 64])
def test_a_plain_client_id_is_kept(jit, sent):
    _, served = jit
    with capture_logs() as lines:
        answer = call(served.port, '/api/v1/openapi.json', **{'X-Request-ID': sent})
    assert answer.request_id == sent and len(access_lines(lines, sent)) == 1


@pytest.mark.parametrize('sent', ['a' * 65, 'two words', '"quoted"', 'ünïcode', '', 'a;b=c'])
def test_an_unsafe_client_id_is_replaced(jit, sent):
    _, served = jit
    with capture_logs() as lines:
        answer = call(served.port, '/api/v1/openapi.json', **{'X-Request-ID': sent})
    assert NEW_ID.fullmatch(answer.request_id)
    assert len(access_lines(lines, answer.request_id)) == 1
    if sent:
        assert sent not in json.dumps(lines, default=str)


def test_no_secret_reaches_a_log_line(jit):
    """The signing secret, a bearer token, a signature, a query string and body text: in none of the lines."""
    slack, served = jit
    signed = slack.driver._slash('U0ALEX', f'request demo-app read 20m {BODY_TEXT}', '/jit', None)
    with capture_logs() as lines:
        filed, replayed = slack.driver.replay(signed), slack.driver.replay(signed)
        call(served.port, '/api/v1/requests?token=query-secret-1', method='POST', body=BODY_TEXT.encode(),
             Authorization=f'Bearer {TOKEN}', Cookie='session=cookie-secret-2')  # fmt: skip
        call(served.port, '/api/v1/requests/r-00000000', Authorization='Bearer wrong-token-3')
        call(served.port, '/nowhere?access_token=query-secret-4')
    assert 'Filed' in (filed.text or '') and replayed.status == 200, filed.body
    logged = json.dumps(lines, default=str)
    assert len(access_lines(lines)) == 5
    secrets = [SECRET, TOKEN, BODY_TEXT, signed.headers['X-Slack-Signature'], 'query-secret', 'cookie-secret',
               'wrong-token']  # fmt: skip
    assert [secret for secret in secrets if secret in logged] == []
    paths = {'/slack/events', '/api/v1/requests', '/api/v1/requests/{id}', '/nowhere'}
    assert {line['path'] for line in access_lines(lines)} == paths


def test_no_decision_link_reaches_a_log_line(tmp_path):
    """A decision link's token is a credential (it decides as the approver it was mailed to). Mail scanners send
    HEAD and OPTIONS before a GET, and a link gets mangled on its way (a slash added, a word glued on): the 405s and
    404s these get are logged without the token, as the GETs and POSTs that match a route are."""
    key = 'access-log-link-key-0123456789abcdefgh'
    token = LinkSigner(key).mint(request_id='r-abcd2345', email='a@b.co', digest='0' * 16, via='email',
                                 expires_at=time.time() + 600)  # fmt: skip
    teams = LinkSigner(key).mint(request_id='r-abcd2345', email='', digest='0' * 16, via='teams',
                                 expires_at=time.time() + 600)  # fmt: skip
    with local_slack(SECRET) as slack:
        deps = build_deps(settings_for(slack, tmp_path, JIT_LINK_KEY=key, JIT_PUBLIC_URL='http://127.0.0.1:1'),
                          providers=['webhook'])  # fmt: skip
        served = Served(create_web_app(deps))
        try:
            with capture_logs() as lines:
                answers = [
                    call(served.port, f'/decide/{token}', method='HEAD').status,
                    call(served.port, f'/decide/{token}', method='OPTIONS').status,
                    call(served.port, f'/decide/{token}', method='PUT', body=b'do=approve').status,
                    call(served.port, f'/decide/teams/{teams}', method='HEAD').status,
                    call(served.port, f'/decide/{token}/').status,
                    call(served.port, f'/decide/{token}/approve').status,
                    call(served.port, f'/decide/teams/{teams}/x').status,
                ]
        finally:
            served.stop()
    assert answers == [405, 405, 405, 405, 404, 404, 404]
    logged = json.dumps(lines, default=str)
    assert token.split('.')[1] not in logged and teams.split('.')[1] not in logged
    assert token.split('.')[2] not in logged and teams.split('.')[2] not in logged
    assert len(access_lines(lines)) == len(answers)


def test_health_checks_are_logged_at_debug_level_only(jit):
    """Orchestrators ask every few seconds: a line each at debug level, none at info."""
    _, served = jit
    with capture_logs() as lines:
        answers = [call(served.port, path) for path in ('/healthz', '/readyz', '/healthz')]
    assert [answer.status for answer in answers] == [200, 200, 200]
    found = [access_lines(lines, answer.request_id) for answer in answers]
    assert [[line['log_level'] for line in each] for each in found] == [['debug'], ['debug'], ['debug']]
    assert [each[0]['path'] for each in found] == ['/healthz', '/readyz', '/healthz']
    assert not [line for line in access_lines(lines) if line['log_level'] != 'debug']


class BrokenPolicy:
    """A policy source with a bug: asking it raises what nothing answers, so aiohttp answers 500."""

    check_every = 3600.0

    def __call__(self) -> Any:
        raise RuntimeError('bug in the policy source')


def test_aiohttps_own_500_carries_the_id_and_is_logged(tmp_path):
    """An exception nothing catches is still aiohttp's 500, with the ID, and one line with status 500."""
    with local_slack(SECRET) as slack:
        deps = build_deps(settings_for(slack, tmp_path), providers=['webhook'])
        served = Served(create_web_app(replace(deps, policy=BrokenPolicy())))
        try:
            with capture_logs() as lines:
                answer = call(served.port, '/readyz')
        finally:
            served.stop()
    assert answer.status == 500 and answer.body.startswith(b'500 Internal Server Error')
    [line] = access_lines(lines, answer.request_id)
    assert (line['path'], line['status']) == ('/readyz', 500)


def test_a_socket_mode_envelopes_lines_carry_its_envelope_id(tmp_path):
    """Over Socket Mode there is no HTTP request: a listener's lines carry the envelope's ID instead."""
    with local_slack(SECRET, transport='socket') as slack:
        deps = build_deps(settings_for(slack, tmp_path, SLACK_APP_TOKEN=slack.app_token), providers=['webhook'])
        deps.redis.flushdb()
        served = Served(create_web_app(deps))
        try:
            assert slack.wait_for_socket(10)
            slack.trigger_ttl = 0
            with capture_logs() as lines:
                reply = slack.driver.slash('U0ALEX', 'request')
                failed = wait_for(lines, 'slack.views_open_failed')
        finally:
            served.stop()
            deps.redis.flushdb()
    assert reply.status == 200
    assert failed['slack_envelope_id'] and failed['slack_user'] == 'U0ALEX'
    assert 'http_request_id' not in failed
