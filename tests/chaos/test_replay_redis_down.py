"""Slack requests while Redis is down: the replay memory cannot be asked, so nothing is acted on, and the
answer says so plainly (no 500, no traceback, no replay let through unchecked)."""

from __future__ import annotations

import time

import pytest

from tests.chaos.conftest import ALEX, SAM, approval_copy, make_store
from tests.e2e.test_replays import web_log

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def test_slack_requests_while_redis_is_down_change_nothing(start_jit, private_redis, slack):
    """A slash command is answered 200 with a text that says nothing was done; a click is a 503 (Slack shows
    the user it failed); a replay is neither acted on then nor after Redis is back (the AOF keeps its memory)."""
    jit = start_jit(private_redis.url)
    store = make_store(private_redis.url)
    signed = slack.driver._slash(ALEX, 'request demo-app read 20s before the outage', '/jit', None)
    reply = slack.driver.replay(signed)
    assert 'Filed' in (reply.text or ''), reply.body
    request_id = reply.text.split('`')[1]
    copy = approval_copy(slack, SAM, request_id)
    time.sleep(1.5)  # > appendfsync everysec
    private_redis.shutdown()
    try:
        during = slack.driver.slash(ALEX, 'request demo-app read 20s during the outage')
        assert during.status == 200 and 'cannot reach' in (during.text or ''), during.body
        assert during.acked_in_time, during.elapsed
        replayed = slack.driver.replay(signed)
        assert replayed.status == 200 and 'Filed' not in (replayed.text or ''), replayed.body
        click = slack.driver.click(SAM, copy, 'jit.approve')
        assert click.status == 503 and click.headers.get('Retry-After'), (click.status, click.body)
    finally:
        private_redis.start()
    after = slack.driver.replay(signed)
    assert after.status == 200 and 'Filed' not in (after.text or ''), after.body
    assert [r.reason for r in store.for_user(ALEX)] == ['before the outage']
    assert store.get(request_id).status.value == 'pending', 'the click during the outage did nothing'
    logs = web_log(jit)
    assert logs.count('"slack.unavailable"') == 3 and logs.count('"slack.replayed"') == 1
    assert 'Traceback' not in logs
