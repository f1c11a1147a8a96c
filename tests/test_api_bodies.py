"""The pipeline API's answers to what the router and the body rules refuse, over HTTP against ``jit serve``'s
web app: a 405 names the methods it takes, and a ``NewRequest`` body is checked against the OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.api.server import parse_new_request
from bot.app import create_web_app
from bot.deps import build_deps
from bot.sandbox.local_slack import LocalSlack
from tests.support.served import Served
from tests.support.slack import local_slack
from tests.test_access_log import SECRET, TOKEN, Answer, call, settings_for
from tests.test_openapi import conforms

pytestmark = [pytest.mark.redis]


@pytest.fixture(name='jit', scope='module')
def _jit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalSlack, Served]]:
    policy_dir: Path = tmp_path_factory.mktemp('policy')
    with local_slack(SECRET) as slack:
        deps = build_deps(settings_for(slack, policy_dir), providers=['webhook'])
        deps.redis.flushdb()
        served = Served(create_web_app(deps))
        slack.app_url = f'http://127.0.0.1:{served.port}/slack/events'
        try:
            yield slack, served
        finally:
            served.stop()
            deps.redis.flushdb()


def _post(served: Served, body: Any) -> tuple[int, dict[str, Any]]:
    answer = call(served.port, '/api/v1/requests', method='POST', body=json.dumps(body).encode(),
                  Authorization=f'Bearer {TOKEN}', **{'Content-Type': 'application/json'})  # fmt: skip
    got = json.loads(answer.body)
    conforms('/requests', 'POST', answer.status, got)
    return answer.status, got


def _allow(answer: Answer) -> set[str]:
    value = {name.lower(): v for name, v in answer.headers.items()}.get('allow', '')
    return {method.strip() for method in value.split(',') if method.strip()}


def test_a_405_names_the_methods_the_route_takes(jit):
    _, served = jit
    auth = {'Authorization': f'Bearer {TOKEN}'}
    answer = call(served.port, '/api/v1/requests/r-abcdefgh', method='DELETE', **auth)
    assert answer.status == 405 and json.loads(answer.body)['error'] == 'method not allowed'
    assert _allow(answer) == {'GET'}
    answer = call(served.port, '/api/v1/requests', method='PUT', body=b'{}', **auth)
    assert answer.status == 405 and _allow(answer) == {'POST'}
    answer = call(served.port, '/api/v1/requests/r-abcdefgh/release', method='GET', **auth)
    assert answer.status == 405 and _allow(answer) == {'POST'}


OPTIONAL = ('role', 'duration', 'reason', 'ticket', 'context', 'public_key')


@pytest.mark.parametrize('empty', ['', None])
def test_an_empty_or_null_optional_field_is_the_same_as_one_left_out(empty):
    left_out = parse_new_request({'resource': 'demo-app'})
    for field in OPTIONAL:
        if empty == '' and field == 'context':
            continue  # an object, not text
        assert parse_new_request({'resource': 'demo-app', field: empty}) == left_out, field
    every = {field: empty for field in OPTIONAL if not (empty == '' and field == 'context')}
    assert parse_new_request({'resource': 'demo-app', **every}) == left_out


def test_a_body_of_empty_optional_fields_is_filed_as_if_they_were_left_out(jit):
    _, served = jit
    status, filed = _post(served, {'resource': 'demo-app', 'role': '', 'duration': '', 'reason': '', 'ticket': '',
                                   'public_key': ''})  # fmt: skip
    assert status == 201, filed
    assert filed['role'] == 'read' and filed['ticket'] is None and filed['reason'] == '', filed
    release = call(served.port, f'/api/v1/requests/{filed["id"]}/release', method='POST',
                   Authorization=f'Bearer {TOKEN}')  # fmt: skip
    assert release.status == 200
