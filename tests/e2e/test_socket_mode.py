"""Socket Mode only: what has no HTTP counterpart. The shared scenarios run over both transports elsewhere
(``both_transports``); here: no ``/slack/events`` while on a socket, a bad app token told plainly, a
refreshed socket reconnected, and envelopes Slack would never send acked and refused without a change."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from bot.sandbox.local_slack import LocalSlack
from bot.sandbox.workspace import seed_workspace
from tests.support.policies import E2E_POLICY
from tests.support.processes import JitProcesses, free_port, wait_until
from tests.support.slack import SIGNING_SECRET

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.socket_only]
ALEX, SAM = 'U0ALEX', 'U0SAM'


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b'{}')


def test_serves_no_slack_events_url_and_is_ready_once_connected(jit, slack, store):
    status, body = _get(f'{jit.url}/readyz')
    assert (status, body['problems']) == (200, [])
    request = urllib.request.Request(f'{jit.url}/slack/events', data=b'{}', method='POST')
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code in (404, 405)
    assert slack.calls_to('apps.connections.open')[-1].ok
    reply = slack.driver.slash(ALEX, 'request demo-app read 20m checking the deploy')
    assert reply.acked_in_time and 'Filed' in reply.text


def test_refreshed_socket_reconnects_and_keeps_serving(jit, slack, store):
    opened = slack.socket_mode.connections_opened
    assert slack.refresh_sockets() == 1
    wait_until(lambda: slack.socket_mode.connections_opened > opened and slack.socket_mode.connected,
               timeout=30, what='jit to open a new socket after refresh_requested')  # fmt: skip
    reply = slack.driver.slash(ALEX, 'request demo-app read 20m after the refresh')
    assert reply.status == 200 and 'Filed' in reply.text, reply
    assert len(store.for_user(ALEX)) == 1


@pytest.mark.parametrize(
    ('kind', 'payload'),
    [
        ('slash_commands', {'command': '/jit', 'text': 'request demo-app read 1h x'}),  # no user, team, trigger
        ('slash_commands', {'command': '/jit', 'user_id': ['U0ALEX'], 'team_id': 'T0LOCAL', 'trigger_id': '1.2.3'}),
        ('interactive', {'type': 'block_actions', 'user': {'id': 7}, 'actions': [], 'trigger_id': '1.2.3'}),
        ('interactive', {'type': 'no_such_interaction'}),
        ('events_api', {'type': 'event_callback', 'team_id': 'T0LOCAL', 'event': 'app_home_opened'}),
        ('no_such_envelope', {'type': 'event_callback'}),
    ],
    ids=['slash-missing-fields', 'slash-wrong-types', 'click-wrong-types', 'unknown-interaction',
         'event-wrong-shape', 'unknown-envelope'],
)  # fmt: skip
def test_malformed_envelopes_are_acked_and_change_nothing(jit, slack, store, kind, payload):
    before = store.audit_events()
    ack = slack.send_envelope(kind, payload)
    assert ack is not None and ack.payload is None  # acked (no redelivery), with nothing to show
    assert store.for_user(ALEX) == [] and store.audit_events() == before
    # The connection survived and still serves.
    assert 'Filed' in slack.driver.slash(ALEX, 'request demo-app read 20m still here').text
    logs = jit.dump_logs()
    assert 'Traceback' not in logs and 'slack.rejected' in logs


def test_a_bad_app_token_is_said_plainly_and_readyz_fails(tmp_path, redis_url):
    slack = LocalSlack(workspace=seed_workspace(), signing_secret=SIGNING_SECRET, transport='socket',
                       app_token='xapp-1-the-real-one')  # fmt: skip
    slack.start_in_thread()
    policies, logs = tmp_path / 'policies', tmp_path / 'logs'
    policies.mkdir()
    logs.mkdir()
    (policies / 'policy.yaml').write_text(E2E_POLICY)
    procs = JitProcesses({
        'SLACK_BOT_TOKEN': slack.bot_token, 'SLACK_APP_TOKEN': 'xapp-1-revoked', 'SLACK_API_URL': slack.api_url,
        'REDIS_URL': redis_url, 'JIT_POLICY_DIR': str(policies), 'PORT': str(free_port()),
        'JIT_HOST': '127.0.0.1', 'JIT_LOG_FORMAT': 'json', 'DEMO_WEBHOOK_URL': 'http://127.0.0.1:9/',
        'DEMO_WEBHOOK_SECRET': 'x',
    }, logs)  # fmt: skip
    try:
        procs.start_web()
        wait_until(lambda: 'slack.socket.refused' in procs.dump_logs(), timeout=15, what='the refusal logged')
        status, body = _get(f'{procs.url}/readyz')
        assert status == 503
        assert body['problems'] == ['slack socket: apps.connections.open: invalid_auth']
        logs_text = procs.dump_logs()
        assert 'connections:write' in logs_text and 'Traceback' not in logs_text
        assert 'xapp-1-revoked' not in logs_text  # the token itself never reaches the logs
        assert slack.socket_mode.connected == 0
    finally:
        procs.stop()
        slack.stop_thread()
