"""Replays at the Slack edge (product.md §7 Decisions): one signed request sent again byte for byte within
Slack's 5-minute window, or a Socket Mode envelope Slack sends again with the same ``envelope_id``, is
answered (200, or acked) without acting: nothing filed, decided or changed a second time, no second answer.

Two presses of the same button by a person are two *different* signed requests (other timestamps, other
``action_ts``): those reach the listeners, and the store's atomic transitions decide once (see
``test_request_flow.test_twenty_concurrent_replays_grant_once``).
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.test_request_flow import ALEX, SAM, SEC, approval_copy, file_request
from tests.support.processes import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.redis]
HUGE = '9' * 5000


def _created(store, reason: str) -> list[dict]:
    return [e for e in store.audit_events() if e['event'] == 'request.created'
            and (e.get('request') or {}).get('reason') == reason]  # fmt: skip


def _approval_copies(slack, user: str, words: str) -> list:
    dm = slack.workspace.dm_channel_id(user)
    return [m for m in slack.workspace.messages(dm) if words in m.content and m.action_ids and 'Reminder' not in m.text]


def web_log(jit) -> str:
    """All that ``jit serve`` logged (``dump_logs`` keeps only the end of each file)."""
    return ''.join(p.read_text(errors='replace') for p in sorted(jit.logs.glob('serve-*.log')))


def _replays_logged(jit) -> int:
    return web_log(jit).count('"slack.replayed"')


def test_a_replayed_slash_command_files_once(jit, slack, store):
    """One signed `/jit request` body posted 3 times: one request, one approval copy per approver."""
    reason = 'replayed command'
    signed = slack.driver._slash(ALEX, f'request demo-app read 20m {reason}', '/jit', None)
    replies = [slack.driver.replay(signed) for _ in range(3)]
    assert [r.status for r in replies] == [200, 200, 200], [r.body for r in replies]
    assert 'Filed' in (replies[0].text or '')
    assert not [r for r in replies[1:] if 'Filed' in (r.text or '')], [r.body for r in replies]
    [request] = store.for_user(ALEX)
    approval_copy(slack, SAM, request.id)
    approval_copy(slack, SEC, request.id)  # each copy there (waited for), so that only a second one can fail below
    time.sleep(2)  # the notify jobs of any second filing would have posted by now
    assert [r.reason for r in store.for_user(ALEX)] == [reason]
    assert len(_created(store, reason)) == 1
    assert len(_approval_copies(slack, SAM, reason)) == 1 and len(_approval_copies(slack, SEC, reason)) == 1
    assert _replays_logged(jit) == 2


def test_a_replayed_approve_click_is_not_acted_on(jit, slack, webhook, store):
    """sam's signed Approve click posted 3 times: approved and granted once, and the replays reach no listener
    (no "already decided" answer is posted for them)."""
    request_id, _ = file_request(slack, text='request demo-app read 1m replayed click')
    copy = approval_copy(slack, SAM, request_id)
    signed = slack.driver._click(SAM, copy, 'jit.approve', None, True)
    replies = [slack.driver.replay(signed) for _ in range(3)]
    assert [r.status for r in replies] == [200, 200, 200], [r.body for r in replies]
    wait_until(lambda: webhook.grants_for(request_id), timeout=15, what='the grant')
    time.sleep(2)
    assert len(webhook.grants_for(request_id)) == 1
    assert len([e for e in store.audit_events() if e['event'] == 'request.approved']) == 1
    assert [e.text for e in slack.workspace.ephemerals(SAM) if 'already' in e.text] == []
    assert _replays_logged(jit) == 2


def test_a_replayed_modal_submission_files_once(jit, slack, store):
    """The request modal's signed submission posted 3 times: one request."""
    assert slack.driver.slash(ALEX, '').status == 200
    view = slack.workspace.wait_for(lambda: next(iter(slack.workspace.views_for(ALEX)), None), timeout=10)
    signed = slack.driver._submit(ALEX, view, {'access': 'demo-app:read', 'duration': '1800',
                                               'reason': 'replayed modal'}, True)  # fmt: skip
    replies = [slack.driver.replay(signed) for _ in range(3)]
    assert [(r.status, r.errors) for r in replies] == [(200, {})] * 3, [r.body for r in replies]
    time.sleep(1)
    assert [r.reason for r in store.for_user(ALEX)] == ['replayed modal']
    assert len(_created(store, 'replayed modal')) == 1
    assert _replays_logged(jit) == 2


@pytest.mark.socket_only
def test_a_resent_socket_envelope_is_acked_and_not_acted_on_twice(jit, slack, webhook, store):
    """Slack sends an envelope again (same ``envelope_id``) when it got no ack: acked again, acted on once."""
    reason = 'resent envelope'
    _, payload = slack.driver._slash(ALEX, f'request demo-app read 1m {reason}', '/jit', None).envelope
    first = slack.send_envelope('slash_commands', payload, envelope_id='env-slash-1')
    assert first is not None and 'Filed' in (first.payload or {}).get('text', ''), first
    again = slack.send_envelope('slash_commands', payload, envelope_id='env-slash-1', retry_attempt=1)
    assert again is not None, 'a re-sent envelope is acked'
    assert 'Filed' not in ((again.payload or {}).get('text') or ''), again
    [request] = store.for_user(ALEX)
    assert len(_created(store, reason)) == 1

    copy = approval_copy(slack, SAM, request.id)
    _, click = slack.driver._click(SAM, copy, 'jit.approve', None, True).envelope
    for attempt in range(3):
        assert slack.send_envelope('interactive', click, envelope_id='env-click-1', retry_attempt=attempt) is not None
    wait_until(lambda: webhook.grants_for(request.id), timeout=15, what='the grant')
    time.sleep(2)
    assert len(webhook.grants_for(request.id)) == 1
    assert len([e for e in store.audit_events() if e['event'] == 'request.approved']) == 1
    assert [e.text for e in slack.workspace.ephemerals(SAM) if 'already' in e.text] == []
    assert _replays_logged(jit) == 3


@pytest.mark.both_transports
def test_a_duration_of_5000_digits_is_refused_plainly(jit, slack, store):
    """A number far too large for a duration: an ephemeral that says so, nothing filed, no traceback."""
    reply = slack.driver.slash(ALEX, f'request demo-app read {HUGE}h huge')
    assert reply.status == 200 and 'too long' in (reply.text or ''), reply.body[:300]
    assert HUGE not in reply.text and len(reply.text) < 300
    reply = slack.driver.slash(ALEX, f'extend r-abcd2345 {HUGE}m more')
    assert reply.status == 200 and 'too long' in (reply.text or ''), reply.body[:300]
    assert store.for_user(ALEX) == [] and store.redis.keys('jit:req:*') == []
    assert 'Traceback' not in web_log(jit)
