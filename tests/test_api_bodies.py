"""The pipeline API's answers to what the router and the body rules refuse, over HTTP against ``jit serve``'s
web app: a 405 names the methods it takes, and a ``NewRequest`` body is checked against the OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bot.api.server import ApiError, new_request_schema, parse_new_request
from bot.app import create_web_app
from bot.core.durations import MAX_DURATION
from bot.deps import build_deps
from bot.sandbox.local_slack import LocalSlack
from tests.support.served import Served
from tests.support.slack import local_slack
from tests.test_access_log import SECRET, TOKEN, Answer, call, settings_for
from tests.test_openapi import DOC, conforms

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


def test_the_scheme_bearer_is_read_in_any_case_and_the_token_is_not(jit):
    _, served = jit
    for scheme in ('Bearer', 'bearer', 'BEARER'):
        answer = call(served.port, '/api/v1/requests/r-abcdefgh', Authorization=f'{scheme} {TOKEN}')
        assert answer.status == 404, (scheme, answer.status)  # past the token: no such request
    for wrong in (f'Bearer {TOKEN.upper()}', f'Bearer  {TOKEN}', f'Bearer{TOKEN}', f'Basic {TOKEN}'):
        assert call(served.port, '/api/v1/requests/r-abcdefgh', Authorization=wrong).status == 401, wrong


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


@pytest.mark.parametrize(
    ('body', 'wrong'),
    [
        ({}, {'resource': 'required'}),
        ({'resource': 'demo-app', 'duraton': '5m', 'extra': 1}, {'duraton': 'unknown field', 'extra': 'unknown field'}),
        ({'resource': ''}, 'resource'),
        ({'resource': '   '}, 'resource'),
        ({'resource': 'x' * 101}, 'resource'),
        ({'resource': 7}, 'resource'),
        ({'resource': None}, 'resource'),
        ({'resource': 'demo-app', 'role': ['read']}, 'role'),
        ({'resource': 'demo-app', 'ticket': 'x' * 101}, 'ticket'),
        ({'resource': 'demo-app', 'reason': 'x' * 1001}, 'reason'),
        ({'resource': 'demo-app', 'duration': True}, 'duration'),
        ({'resource': 'demo-app', 'duration': 0}, 'duration'),
        ({'resource': 'demo-app', 'reason': '\ud800'}, 'reason'),  # not text (I-JSON)
        ({'resource': 'demo-app', 'context': {'event': '\udfff'}}, 'context'),
        ({'resource': 'demo-app', 'duration': 'forever'}, 'duration'),  # not of a duration's shape
        ({'resource': 'demo-app', 'duration': '   '}, 'duration'),
        ({'resource': 'demo-app', 'reason': ' \t '}, 'reason'),
        ({'resource': 'demo-app', 'ticket': '\n'}, 'ticket'),
        ({'resource': 'demo-app', 'duration': 1.5}, 'duration'),
        ({'resource': 'demo-app', 'duration': '1' * 41}, 'duration'),
        ({'resource': 'demo-app', 'context': ['x']}, 'context'),
        ({'resource': 'demo-app', 'context': {'bad name': 'v'}}, 'context'),
        ({'resource': 'demo-app', 'context': {'event\n': 'v'}}, 'context'),
        ({'resource': 'demo-app', 'context': {'event': 1}}, 'context'),
        ({'resource': 'demo-app', 'context': {f'k{i}': 'v' for i in range(21)}}, 'context'),
        ({'resource': 'demo-app', 'public_key': 'not-a-key'}, 'public_key'),
        ({'resource': 'demo-app', 'public_key': 'A' * 43 + '\n'}, 'public_key'),
    ],
)
def test_a_body_that_breaks_new_request_is_refused_naming_each_wrong_field(body, wrong):
    with pytest.raises(ApiError) as refused:
        parse_new_request(body)
    assert refused.value.status == 400
    errors = refused.value.extra['errors']
    if isinstance(wrong, dict):
        assert errors == wrong
    else:
        assert set(errors) == {wrong}, errors
        assert errors[wrong] != 'unknown field'


@pytest.mark.parametrize(
    ('body', 'wrong'),
    [
        ({'resource': 'demo\x00app'}, 'resource'),
        ({'resource': 'demo-app', 'reason': 'x\x00y'}, 'reason'),
        ({'resource': 'demo-app', 'duration': '0s'}, 'duration'),
        ({'resource': 'demo-app', 'duration': '5 parsecs'}, 'duration'),
        ({'resource': 'demo-app', 'duration': '99999999999h'}, 'duration'),
        ({'resource': 'demo-app', 'public_key': 'A' * 43}, 'public_key'),  # all zeros: a low-order point
    ],
)
def test_a_body_the_document_allows_with_a_value_jit_cannot_use_is_a_422(body, wrong):
    """The document allows it (checked here with its own validator), and jit still cannot use it: 422, not the
    400 of a body that breaks the document, naming the field and why."""
    assert not list(new_request_schema().iter_errors(body))
    with pytest.raises(ApiError) as refused:
        parse_new_request(body)
    assert refused.value.status == 422
    assert set(refused.value.extra['errors']) == {wrong}, refused.value.extra


def test_a_body_with_both_kinds_of_fault_is_a_400_naming_all_of_them():
    with pytest.raises(ApiError) as refused:
        parse_new_request({'resource': '', 'duration': '0s'})
    assert refused.value.status == 400 and set(refused.value.extra['errors']) == {'resource', 'duration'}


def test_a_422_over_http_conforms_to_the_document(jit):
    _, served = jit
    status, got = _post(served, {'resource': 'demo-app', 'duration': '0s'})
    assert status == 422 and set(got['errors']) == {'duration'}, got
    assert 'not a positive duration' in got['errors']['duration']
    status, got = _post(served, {'resource': 'demo-app', 'duration': '5s'})  # a duration, shorter than any rule takes
    assert status == 403 and 'allowed' in got, got


def test_every_wrong_field_is_named_at_once_over_http(jit):
    _, served = jit
    status, got = _post(served, {'resource': '', 'duration': -5, 'context': [], 'color': 'red'})
    assert status == 400
    assert set(got['errors']) == {'resource', 'duration', 'context', 'color'}, got
    assert got['errors']['color'] == 'unknown field'


def test_the_body_rules_are_those_of_the_openapi_document():
    """What NewRequest in openapi.yaml refuses, the API refuses, naming the same fields; and it is read from the
    document: its limits are the document's, not numbers of its own."""
    schema = {'$ref': '#/components/schemas/NewRequest', 'components': DOC['components']}
    document = jsonschema.Draft202012Validator(schema)
    assert new_request_schema().schema == schema
    properties = DOC['components']['schemas']['NewRequest']['properties']
    most = properties['context']['maxProperties']
    assert properties['duration']['oneOf'][0]['maximum'] == MAX_DURATION  # the longest duration jit reads anywhere
    for body in ({'resource': 'x' * (properties['resource']['maxLength'] + 1)},
                 {'resource': 'demo-app', 'reason': 'x' * (properties['reason']['maxLength'] + 1)},
                 {'resource': 'demo-app', 'context': {f'k{i}': 'v' for i in range(most + 1)}},
                 {'resource': 'demo-app', 'duration': None, 'role': 5}):  # fmt: skip
        fields = {str(e.absolute_path[0]) for e in document.iter_errors(body) if e.absolute_path}
        assert fields
        with pytest.raises(ApiError) as refused:
            parse_new_request(body)
        assert set(refused.value.extra['errors']) == fields
