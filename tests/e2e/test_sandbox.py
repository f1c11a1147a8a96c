"""`jit sandbox` end to end: one command, then the whole request flow driven through the sandbox page's API.

The sandbox runs as a real subprocess (`python -m bot sandbox`, started by ``tests/support/jit_sandbox.py``) on a
Redis database of its own (db 14 of the test process's own Redis), so this checks the wiring `run_sandbox` does:
local Slack, webhook receiver, `jit serve` and `jit worker`, and the page routes a browser uses.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.jit_sandbox import jit_sandbox
from tests.support.processes import wait_until
from tests.support.redis_server import own_redis_url

pytestmark = [pytest.mark.e2e, pytest.mark.redis]
REDIS_URL = own_redis_url(14)
ALEX, SAM = 'U0ALEX', 'U0SAM'


def _get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status, answer.headers.get('Content-Type', ''), answer.read().decode()


def _post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method='POST',
                                     headers={'Content-Type': 'application/json'})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


@pytest.fixture(name='sandbox')
def _sandbox(tmp_path) -> Iterator[str]:
    """`python -m bot sandbox` on a free port; yields the page URL it printed."""
    with jit_sandbox(tmp_path / 'jit', REDIS_URL) as url:
        yield url


def _state(base: str, user: str) -> dict[str, Any]:
    return json.loads(_get(f'{base}sandbox/state?user={user}')[2])


def test_sandbox_runs_the_request_flow(sandbox: str) -> None:
    """alex files through the page API, sam approves by clicking, the demo webhook grants, then revokes."""
    status, content_type, page = _get(sandbox)
    assert status == 200 and content_type.startswith('text/html') and 'jit sandbox' in page

    ack = _post(f'{sandbox}sandbox/command', {'user': ALEX, 'text': 'request demo-app read 15s trying the sandbox'})
    assert ack['status'] == 200 and 'Filed' in ack['text'], ack
    request_id = ack['text'].split('`')[1]

    def approve_button() -> tuple[dict[str, Any], dict[str, Any]] | None:
        dm = next(c for c in _state(sandbox, SAM)['channels'] if c['id'] == 'D0SAM')
        for message in dm['messages']:
            for button in message['buttons']:
                if button['action_id'] == 'jit.approve' and button['value'] == request_id:
                    return message, button
        return None

    message, button = wait_until(approve_button, timeout=15, interval=0.2, what="sam's Approve button")
    click = {'user': SAM, 'channel': message['channel'], 'ts': message['ts'], 'action_id': button['action_id'],
             'value': button['value']}  # fmt: skip
    clicked = _post(f'{sandbox}sandbox/click', click)
    assert clicked['status'] == 200, clicked

    def active() -> dict[str, Any]:
        return {grant['request_id']: grant for grant in _state(sandbox, ALEX)['webhook']['active']}

    grant = wait_until(lambda: active().get(request_id), timeout=15, interval=0.2, what='the webhook grant')
    assert (grant['resource'], grant['role'], grant['user']['slack_id']) == ('demo-app', 'read', ALEX)
    wait_until(lambda: request_id not in active(), timeout=25, interval=0.5, what='the revoke')
    calls = _state(sandbox, ALEX)['webhook']['calls']
    assert [c['action'] for c in calls if c['request_id'] == request_id] == ['grant', 'revoke']
