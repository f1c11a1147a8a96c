"""The pipeline API's answers to what the router and the body rules refuse, over HTTP against ``jit serve``'s
web app: a 405 names the methods it takes, and a ``NewRequest`` body is checked against the OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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
