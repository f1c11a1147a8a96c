"""Socket Mode under bad input: generated envelopes on the WebSocket of a running ``jit serve``.

There is no signature on a socket (it was opened with the app token), so what matters is the other half of
the edge: whatever a payload holds, the envelope is acked (or Slack sends it again), in Slack's 3 seconds,
without a traceback or an error in the log, and the connection stays up. The payloads are the HTTP fuzz's
(``tests/fuzz/edge.py``), sent as the envelope types Slack uses, and as types it does not.
"""

from __future__ import annotations

import json
import os
import statistics

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.edge import (
    TRIGGER,
    block_actions,
    events_body,
    json_garbage,
    log_lines,
    other_interaction,
    problems,
    slash_fields,
    view_submission,
)
from tests.support.policies import E2E_POLICY
from tests.support.processes import launch_jit
from tests.support.redis_server import own_redis_url
from tests.support.slack import SIGNING_SECRET, WEBHOOK_SECRET, local_slack

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.slow]
EXAMPLES = int(os.environ.get('JIT_SOCKET_FUZZ_EXAMPLES', '600'))
ACK_LIMIT = 3.0

_object = st.dictionaries(st.text(max_size=10), json_garbage, max_size=6)
envelopes = st.one_of(
    st.tuples(st.just('slash_commands'), slash_fields()),
    st.tuples(st.just('slash_commands'), _object),
    st.tuples(st.just('interactive'), st.one_of(block_actions(), view_submission(), other_interaction(), _object)),
    st.tuples(st.just('events_api'), st.one_of(events_body(), _object)),
    # Types Slack does not send (``hello`` and ``disconnect`` are control messages the SDK handles itself).
    st.tuples(st.sampled_from(['interactive_v2', 'slash_command', '', 'x' * 300]), _object),
)


@pytest.fixture(name='socket_slack')
def _socket_slack():
    with local_slack(SIGNING_SECRET, transport='socket') as slack:
        yield slack


def test_generated_envelopes_are_all_acked_in_time_without_an_error(tmp_path, socket_slack):
    # Database 7 is the HTTP fuzz's; the two tests run one after the other (same xdist group).
    url = own_redis_url(7)
    redis.Redis.from_url(url).flushdb()
    procs = launch_jit(tmp_path, slack=socket_slack, signing_secret=SIGNING_SECRET, redis_url=url, policy=E2E_POLICY,
                       DEMO_WEBHOOK_URL='http://127.0.0.1:9/', DEMO_WEBHOOK_SECRET=WEBHOOK_SECRET,
                       JIT_REQUESTS_PER_HOUR='0', JIT_MAX_OPEN_REQUESTS='0')  # fmt: skip
    latencies: list[float] = []
    kinds: dict[str, int] = {}
    try:

        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(envelope=envelopes)
        def send(envelope: tuple[str, dict]) -> None:
            kind, payload = envelope
            text = json.dumps(payload)
            while TRIGGER in text:
                text = text.replace(TRIGGER, socket_slack.mint_trigger('U0ALEX'), 1)
            ack = socket_slack.send_envelope(kind, json.loads(text), timeout=5)
            assert ack is not None, f'not acked: {kind} {text[:300]}'
            latencies.append(ack.elapsed)
            kinds[kind[:20]] = kinds.get(kind[:20], 0) + 1

        send()
        print(f'\nFIGURES socket: {len(latencies)} envelopes {kinds}; ack p50 '
              f'{statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms')  # fmt: skip
        assert len(latencies) >= EXAMPLES * 0.9
        assert max(latencies) <= ACK_LIMIT
        assert socket_slack.socket_mode.connected == 1 and socket_slack.socket_mode.connections_opened == 1
        found = problems(log_lines(procs))
        assert found == [], json.dumps(found[:5], indent=1)[:6000]
        assert 'Filed' in (socket_slack.driver.slash('U0ALEX', 'request demo-app read 20m still works').text or '')
    finally:
        procs.stop()
        redis.Redis.from_url(url).flushdb()
