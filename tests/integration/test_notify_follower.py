"""Slack messages follow the audit stream: every event shown, in order, what a burst shares sent once.

Real Redis and the real use cases; Slack is a client that records each Web API call (the local Slack's own
behaviour is covered in ``tests/sandbox``, and end to end in ``tests/e2e``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis
from slack_sdk.errors import SlackApiError

from bot.adapters.redis_store import RedisStore
from bot.adapters.slack_notifier import LINES_PER_POST, SlackNotifier
from bot.core import transitions
from bot.core.model import AuditEvent
from bot.core.policy_loader import build_policy
from bot.usecases.decide_request import ApproveRequest
from bot.usecases.grant_access import GrantAccess
from bot.usecases.revoke_access import RevokeAccess
from bot.usecases.submit_request import SubmitRequest
from tests.core.policy_fixtures import ALEX, POLICY_YAML, SAM
from tests.integration.test_grant_recheck import Recorder
from tests.support.fakes import MovableClock
from tests.support.redis_server import own_redis_url
from workers.notify_follower import START_WINDOW, NotifyFollower

pytestmark = pytest.mark.redis
URL = own_redis_url(13)


class Slack:
    """Records every call; ``down`` makes each call fail as an unreachable Slack would."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.down = False
        self.gone_channels: set[str] = set()
        self.delete_error: str | None = None
        self._ts = 0

    def _call(self, method: str, kwargs: dict[str, Any]) -> None:
        if self.down:
            raise ConnectionError('slack is unreachable')
        self.calls.append((method, kwargs))

    def conversations_open(self, users: str) -> dict[str, Any]:
        self._call('conversations.open', {'users': users})
        return {'channel': {'id': f'D-{users}-{len(self.calls)}'}}

    def chat_postMessage(self, **kwargs: Any) -> dict[str, Any]:
        self._call('chat.postMessage', kwargs)
        if kwargs['channel'] in self.gone_channels:
            raise SlackApiError('gone', {'ok': False, 'error': 'channel_not_found'})
        self._ts += 1
        return {'channel': kwargs['channel'], 'ts': f'{self._ts}.000100'}

    def chat_update(self, **kwargs: Any) -> dict[str, Any]:
        self._call('chat.update', kwargs)
        return {'ok': True}

    def chat_delete(self, **kwargs: Any) -> dict[str, Any]:
        self._call('chat.delete', kwargs)
        if self.delete_error:
            raise SlackApiError('no', {'ok': False, 'error': self.delete_error})
        return {'ok': True}

    def users_lookupByEmail(self, email: str) -> dict[str, Any]:
        self._call('users.lookupByEmail', {'email': email})
        return {'user': {'id': {'sam@example.com': 'U0SAM'}.get(email, 'U0OTHER')}}

    def methods(self) -> list[str]:
        return [m for m, _ in self.calls]

    def posts_to(self, channel_prefix: str) -> list[str]:
        return [k['text'] for m, k in self.calls if m == 'chat.postMessage' and k['channel'].startswith(channel_prefix)]


@pytest.fixture(name='jit')
def _jit():
    client = redis.Redis.from_url(URL, decode_responses=True)
    client.flushdb()
    clock, rec, slack = MovableClock(), Recorder(), Slack()
    store = RedisStore(client, clock=clock)
    policy = lambda: build_policy({'p.yaml': POLICY_YAML})  # noqa: E731
    kw = {'store': store, 'queue': rec, 'policy': policy, 'clock': clock}
    notifier = SlackNotifier(client=slack, store=store, policy=policy, audit_channel='C0AUDIT')  # type: ignore[arg-type]
    follower = NotifyFollower(store=store, notifier=notifier, block=0.2, settle=0)
    use = {
        'submit': SubmitRequest(**kw),
        'approve': ApproveRequest(**kw),
        'grant': GrantAccess(**kw, provider=lambda name: rec, on_details=lambda r, d: None),
        'revoke': RevokeAccess(**kw, provider=lambda name: rec, sleep=lambda s: None),
    }
    yield store, clock, slack, follower, use
    client.flushdb()


def _file(use: dict[str, Any], reason: str = 'INC-1') -> str:
    return use['submit'].execute(requester=ALEX, resource='prod-db', role='read', duration=600, reason=reason).id


def _drain(follower: NotifyFollower) -> int:
    shown = 0
    while n := follower.follow_once():
        shown += n
    return shown


def test_each_event_is_shown_once_in_order_and_the_cursor_moves(jit):
    store, _, slack, follower, use = jit
    request_id = _file(use)
    assert _drain(follower) == 1
    assert (
        slack.posts_to('C0AUDIT') == [slack.posts_to('C0AUDIT')[0]]
        and 'request.created' in slack.posts_to('C0AUDIT')[0]
    )
    assert any(k['channel'].startswith('D-U0SAM') for m, k in slack.calls if m == 'chat.postMessage'), 'approver asked'
    assert follower.cursor() == store.audit_events()[-1]['seq']
    before = len(slack.calls)
    assert _drain(follower) == 0 and len(slack.calls) == before, 'nothing shown twice'
    use['approve'].execute(request_id, SAM)
    assert _drain(follower) == 1
    assert 'request.approved' in slack.posts_to('C0AUDIT')[-1]


def test_a_burst_of_one_request_updates_each_copy_once_and_dms_the_requester_once(jit):
    """Approved, granting, granted, landing together: each copy is updated once, to the granted state."""
    store, _, slack, follower, use = jit
    request_id = _file(use)
    _drain(follower)
    slack.calls.clear()
    use['approve'].execute(request_id, SAM)
    use['grant'].execute(request_id)
    assert _drain(follower) == 3  # request.approved, grant.started, grant.active
    updates = [k['channel'] for m, k in slack.calls if m == 'chat.update']
    copies = {ref.partition('|')[0] for ref in store.messages(request_id).values()}
    assert len(copies) >= 2 and sorted(updates) == sorted(copies), updates  # the requester's and each approver's
    requester_dms = slack.posts_to('D-U0ALEX')
    assert len(requester_dms) == 1, requester_dms
    assert 'approved by' in requester_dms[0] and 'Granted' in requester_dms[0]
    audit = slack.posts_to('C0AUDIT')
    assert [line.split('*')[1] for line in audit] == ['request.approved', 'grant.started', 'grant.active'], (
        'a post each'
    )
    assert slack.methods().count('conversations.open') == 0, 'the DM channels opened before are reused'


def test_a_copy_that_would_look_the_same_is_not_updated(jit):
    _, _, slack, follower, use = jit
    request_id = _file(use)
    _drain(follower)
    use['approve'].execute(request_id, SAM)
    _drain(follower)
    shown = slack.methods().count('chat.update')
    follower.notifier.handle_batch(follower.store.audit_events()[-1:])  # the same event delivered again
    assert slack.methods().count('chat.update') == shown


def test_a_backlog_of_events_shares_audit_channel_posts_one_line_each(jit):
    _, _, slack, follower, use = jit
    for i in range(LINES_PER_POST + 5):
        _file(use, reason=f'INC-{i}')
    _drain(follower)
    audit = slack.posts_to('C0AUDIT')
    lines = [line for post in audit for line in post.split('\n')]
    assert len(audit) == 2 and len(lines) == LINES_PER_POST + 5
    assert [int(line.split('`#')[1].split('`')[0]) for line in lines] == sorted(int(e['seq']) for e in
                                                                                 jit[0].audit_events())  # fmt: skip


def test_a_loud_event_keeps_its_own_post_and_its_place(jit):
    store, _, slack, follower, use = jit
    _file(use, reason='INC-7 before')
    store.record(AuditEvent(event='grant.revoke_failed', actor='jit', outcome='failed'))
    _file(use, reason='INC-8 after')
    _drain(follower)
    audit = slack.posts_to('C0AUDIT')
    assert len(audit) == 3, audit
    assert 'INC-7 before' in audit[0] and 'grant.revoke_failed' in audit[1] and 'INC-8 after' in audit[2]


def test_slack_unreachable_mid_batch_resends_only_what_was_not_sent(jit):
    store, _, slack, follower, use = jit
    first, second = _file(use, reason='INC-1 one'), _file(use, reason='INC-2 two')
    sent_before_failure = []

    original = slack.chat_postMessage

    def fail_on_second(**kwargs):
        if second in kwargs['text'] and 'Your request' in kwargs['text']:
            slack.down = True
        sent_before_failure.append(kwargs['text'])
        return original(**kwargs)

    slack.chat_postMessage = fail_on_second
    with pytest.raises(ConnectionError):
        follower.follow_once()
    assert follower.cursor() == 0, 'not moved past events not shown'
    slack.down = False
    slack.chat_postMessage = original
    _file(use, reason='INC-3 three')  # arrives meanwhile: the retry is the failed batch only
    calls_before = len(slack.calls)
    assert follower.follow_once() == 2
    retried = [k['text'] for m, k in slack.calls[calls_before:] if m == 'chat.postMessage']
    assert not [t for t in retried if first in t], 'the first request was shown already: not again'
    assert not [t for t in retried if 'request.created' in t], 'the audit lines were posted already'
    assert [t for t in retried if second in t], 'the second request is shown now'
    assert follower.follow_once() == 1 and follower.cursor() == store.audit_events()[-1]['seq']


def test_a_dm_channel_slack_no_longer_knows_is_opened_again(jit):
    _, _, slack, follower, _ = jit
    channel, _ = follower.notifier.dm('U0X', 'one')
    slack.gone_channels.add(channel)
    channel2, _ = follower.notifier.dm('U0X', 'two')
    assert channel2 != channel and slack.methods().count('conversations.open') == 2
    follower.notifier.dm('U0X', 'three')
    assert slack.methods().count('conversations.open') == 2


def test_a_first_start_shows_only_recent_events_not_the_whole_trail(jit):
    _, clock, slack, follower, use = jit
    _file(use, reason='INC-4 long ago')
    clock.t += START_WINDOW + 5
    _file(use, reason='INC-5 just now')
    _drain(follower)
    audit = slack.posts_to('C0AUDIT')
    assert len(audit) == 1 and 'just now' in audit[0] and 'long ago' not in audit[0]


def test_one_follower_at_a_time_and_another_takes_over(jit):
    store, _, slack, follower, use = jit
    other_slack = Slack()
    other = NotifyFollower(store=store, notifier=SlackNotifier(client=other_slack, store=store,  # type: ignore[arg-type]
                           policy=follower.notifier.policy, audit_channel='C0AUDIT'), block=0.1, settle=0)  # fmt: skip
    follower.start()
    deadline = time.time() + 10
    while not store.redis.exists(f'{store.prefix}lease:notify-follower') and time.time() < deadline:
        time.sleep(0.01)
    other.start()
    try:
        ids = [_file(use, reason=f'INC-{i}') for i in range(5)]
        deadline = time.time() + 10
        while follower.cursor() < store.audit_events()[-1]['seq'] and time.time() < deadline:
            time.sleep(0.05)
        assert follower.cursor() == store.audit_events()[-1]['seq']
        assert other_slack.calls == [], 'the second follower waits'
        follower.stop()
        store.redis.delete(f'{store.prefix}lease:notify-follower')  # what a killed follower's lease does within LEASE
        last = _file(use, reason='INC-6 after the first stopped')
        deadline = time.time() + 10
        while not other_slack.posts_to('C0AUDIT') and time.time() < deadline:
            time.sleep(0.05)
        assert [t for t in other_slack.posts_to('C0AUDIT') if last in t]
        shown = [
            line for post in slack.posts_to('C0AUDIT') + other_slack.posts_to('C0AUDIT') for line in post.split('\n')
        ]
        assert len(shown) == len(ids) + 1, 'each event once, between the two'
    finally:
        follower.stop()
        other.stop()
    assert not [t for t in threading.enumerate() if t.name == 'jit-notify-follower' and t.is_alive()]


def test_the_ends_soon_warning_follows_the_grants_end_and_is_sent_once(jit):
    store, clock, slack, follower, use = jit
    request_id = _file(use)
    use['approve'].execute(request_id, SAM)
    use['grant'].execute(request_id)
    warnings = f'{store.prefix}warnings:due'
    granted = store.get(request_id)
    assert store.redis.zscore(warnings, request_id) == pytest.approx(granted.warning_at())
    assert follower.warn_due() == 0, 'not due yet'
    store.transition(request_id, lambda r: transitions.extend(r, by=600, actor=ALEX, now=clock.now(), max_total=7200))
    extended = store.get(request_id)
    assert extended.warning_at() > granted.warning_at()
    assert store.redis.zscore(warnings, request_id) == pytest.approx(extended.warning_at()), 'moved with the end'
    clock.t = granted.warning_at() + 1
    assert follower.warn_due() == 0, 'the old time no longer counts'
    clock.t = extended.warning_at() + 1
    slack.calls.clear()
    assert follower.warn_due() == 1
    assert [t for t in slack.posts_to('D-U0ALEX') if request_id in t], slack.calls
    assert follower.warn_due() == 0, 'sent once'
    store.mark_end(request_id, at=clock.now(), actor='U0ALEX', why='released')
    assert store.redis.zscore(warnings, request_id) is None, 'a write that keeps the end does not warn again'


def test_a_warning_slack_could_not_take_is_due_again(jit):
    store, clock, slack, follower, use = jit
    request_id = _file(use)
    use['approve'].execute(request_id, SAM)
    use['grant'].execute(request_id)
    clock.t = store.get(request_id).warning_at() + 1
    slack.down = True
    with pytest.raises(ConnectionError):
        follower.warn_due()
    slack.down = False
    assert follower.warn_due() == 1 and [t for t in slack.posts_to('D-U0ALEX') if request_id in t]


def _warned_then_revoked(jit) -> tuple[str, str]:
    store, clock, slack, follower, use = jit
    request_id = _file(use)
    use['approve'].execute(request_id, SAM)
    use['grant'].execute(request_id)
    _drain(follower)
    clock.t = store.get(request_id).warning_at() + 1
    assert follower.warn_due() == 1
    warning = store.messages(request_id)['warning']
    clock.t = store.get(request_id).expires_at + 0.1
    assert use['revoke'].execute(request_id) == 'revoked'
    slack.calls.clear()
    _drain(follower)
    return request_id, warning


def test_at_the_end_the_warning_goes_and_one_dm_tells_the_end(jit):
    """Not the warning edited to "has ended" (keeping its time from before the end) and an "Access ended" DM."""
    slack = jit[2]
    request_id, warning = _warned_then_revoked(jit)
    channel, _, ts = warning.partition('|')
    assert [k for m, k in slack.calls if m == 'chat.delete'] == [{'channel': channel, 'ts': ts}]
    assert not [k for m, k in slack.calls if m == 'chat.update' and k['ts'] == ts], 'not edited'
    assert [t for t in slack.posts_to(channel) if request_id in t] == [f':lock: Access ended: read on prod-db '
                                                                        f'(`{request_id}`).']  # fmt: skip


def test_a_warning_slack_will_not_delete_loses_its_buttons(jit):
    slack = jit[2]
    slack.delete_error = 'cant_delete_message'
    _, warning = _warned_then_revoked(jit)
    channel, _, ts = warning.partition('|')
    [update] = [k for m, k in slack.calls if m == 'chat.update' and (k['channel'], k['ts']) == (channel, ts)]
    assert 'has ended' in update['text']
    assert [b['type'] for b in update['blocks']] == ['section'], 'no buttons'


def test_no_warning_for_a_grant_that_is_ending(jit):
    store, clock, slack, follower, use = jit
    request_id = _file(use)
    use['approve'].execute(request_id, SAM)
    use['grant'].execute(request_id)
    warn_at = store.get(request_id).warning_at()
    store.mark_end(request_id, at=clock.now() + 5, actor='U0ALEX', why='released')
    clock.t = warn_at + 1
    slack.calls.clear()
    assert follower.warn_due() == 1 and slack.posts_to('D-U0ALEX') == []


def test_an_event_jit_cannot_show_is_passed_not_retried_forever(jit):
    """A fault of jit's own with one event (here: a record it cannot read) must not hold up every message after it."""
    store, _, slack, follower, use = jit
    store.record(AuditEvent(event='grant.revoke_failed', actor='jit', outcome='failed', detail={'x': 1}))
    real = follower.notifier._alert
    follower.notifier._alert = lambda record, policy: (_ for _ in ()).throw(KeyError('unreadable'))
    request_id = _file(use, reason='INC-9 after the bad one')
    assert _drain(follower) == 2
    follower.notifier._alert = real
    assert [t for t in slack.posts_to('C0AUDIT') if request_id in t], 'the next event is shown'
