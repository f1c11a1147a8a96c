"""Every copy tells the same story: multi-step approvals, notify channels, the requester's status message,
buttons only where they can still be used; and the per-person limits on filing requests."""

from __future__ import annotations

import pytest

from bot.core.model import RequestStatus
from tests.support.processes import launch_jit, wait_until
from tests.support.slack import SIGNING_SECRET, demo_webhook_env

pytestmark = [pytest.mark.e2e, pytest.mark.redis]
ALEX, DANA, SAM, SEC = 'U0ALEX', 'U0DANA', 'U0SAM', 'U0SEC'
S = RequestStatus
WAITING = '1 of 2 approved — waiting for security'
POLICY = """\
groups:
  devops: [alex@example.com, dana@example.com]
  leads: [sam@example.com]
  security: [sec@example.com]
admins: [group:security]
resources:
  prod-db:
    provider: webhook
    settings: {url: env:DEMO_WEBHOOK_URL, secret: env:DEMO_WEBHOOK_SECRET}
    roles: [read, admin]
requests:
  - name: prod-admin
    resources: [prod-db]
    roles: [admin]
    requesters: [group:devops]
    steps:
      - {approvers: [group:leads], approvals: 1}
      - {approvers: [group:security], approvals: 1}
    timeout: 1h
  - name: prod-read
    resources: [prod-db]
    roles: [read]
    requesters: [group:devops]
    steps:
      - {approvers: [group:leads], approvals: 1}
      - {approvers: [group:security], approvals: 1}
    notify: [C0ACCESS]
    timeout: 1h
"""


@pytest.fixture(name='jit')
def _jit(tmp_path, redis_url, slack, webhook):
    procs = launch_jit(tmp_path, slack=slack, signing_secret=SIGNING_SECRET, redis_url=redis_url, policy=POLICY,
                       **demo_webhook_env(webhook), JIT_REMINDER_AFTER='0',
                       JIT_REQUESTS_PER_HOUR='3', JIT_MAX_OPEN_REQUESTS='2')  # fmt: skip
    yield procs
    procs.stop()


def _file(slack, text: str, user: str = ALEX) -> str:
    reply = slack.driver.slash(user, text)
    assert reply.status == 200 and 'Filed' in (reply.text or ''), reply.body
    return reply.text.split('`')[1]


def _copy(slack, channel: str, request_id: str, marker: str = ''):
    """The message about ``request_id`` in ``channel`` (a DM or a channel), once it shows ``marker``."""
    return slack.workspace.wait_for_message(
        lambda m: m.channel == channel and request_id in m.content and marker in m.content, timeout=15)  # fmt: skip


def _current(slack, message):
    return slack.workspace.message(message.channel, message.ts)


def _settles(slack, message, *, buttons: list[str], says: str):
    """Wait until the stored message shows exactly ``buttons`` and contains ``says``."""
    return wait_until(lambda: (m := _current(slack, message)) and m.action_ids == buttons and says in m.content and m,
                      timeout=15, what=f'{message.channel}/{message.ts} to show {buttons} and {says!r}')  # fmt: skip


@pytest.mark.both_transports
def test_two_steps_every_copy_and_the_requester_see_where_it_stands(jit, slack, webhook, store):
    ws = slack.workspace
    request_id = _file(slack, 'request prod-db admin 30m schema migration')
    status = _copy(slack, ws.dm_channel_id(ALEX), request_id, 'Your request')
    assert status.action_ids == ['jit.cancel'] and '0 of 2 approved — waiting for leads' in status.content
    sam_copy = _copy(slack, ws.dm_channel_id(SAM), request_id, 'asks for')
    assert sam_copy.action_ids == ['jit.approve', 'jit.deny']
    assert not [m for m in ws.messages(ws.dm_channel_id(SEC)) if request_id in m.content]  # step 2 waits

    assert slack.driver.click(SAM, sam_copy, 'jit.approve').status == 200
    sec_copy = _copy(slack, ws.dm_channel_id(SEC), request_id, 'asks for')
    assert sec_copy.action_ids == ['jit.approve', 'jit.deny'] and WAITING in sec_copy.content
    _settles(slack, sam_copy, buttons=[], says=WAITING)  # sam has decided: his copy says so, without buttons
    _settles(slack, status, buttons=['jit.cancel'], says=WAITING)
    _copy(slack, ws.dm_channel_id(ALEX), request_id, f'`{request_id}`: {WAITING}.')  # and a DM that notifies
    assert store.get(request_id).status is S.PENDING

    assert slack.driver.click(SEC, sec_copy, 'jit.approve').status == 200
    wait_until(lambda: store.get(request_id).status is S.ACTIVE, timeout=15, what='granted after step 2')
    for message in (sam_copy, sec_copy, status):
        _settles(slack, message, buttons=[], says='Approved by')
    assert '2 of 2' in _current(slack, status).content
    # After the decision nobody can act on any copy: a replayed click on the old copy changes nothing.
    assert slack.driver.click(SAM, sam_copy, 'jit.approve', strict=False).status == 200
    approvals = [e for e in store.audit_events() if e['event'] == 'request.approved']
    assert len(approvals) == 2 and len(webhook.grants_for(request_id)) == 1


def test_notify_channel_copy_keeps_its_buttons_until_the_last_step(jit, slack, webhook, store):
    request_id = _file(slack, 'request prod-db read 30m looking at slow queries')
    copy = _copy(slack, 'C0ACCESS', request_id, 'asks for')
    assert copy.action_ids == ['jit.approve', 'jit.deny']
    assert slack.driver.click(SAM, copy, 'jit.approve').status == 200
    # Anyone in the channel may press; the next step's approvers still need the buttons.
    _settles(slack, copy, buttons=['jit.approve', 'jit.deny'], says=WAITING)
    assert slack.driver.click(SAM, copy, 'jit.approve').status == 200  # sam again: refused, nothing changes
    assert store.get(request_id).status is S.PENDING
    assert slack.driver.click(SEC, copy, 'jit.approve').status == 200
    _settles(slack, copy, buttons=[], says='Approved by')
    assert [m.channel for m in slack.workspace.messages('C0ACCESS') if request_id in m.content] == ['C0ACCESS']


def test_cancel_from_the_status_message(jit, slack, store):
    ws = slack.workspace
    request_id = _file(slack, 'request prod-db admin 30m changed my mind')
    status = _copy(slack, ws.dm_channel_id(ALEX), request_id, 'Your request')
    sam_copy = _copy(slack, ws.dm_channel_id(SAM), request_id, 'asks for')
    assert slack.driver.click(DANA, status, 'jit.cancel', strict=False).status == 200  # not dana's to cancel
    assert store.get(request_id).status is S.PENDING
    assert slack.driver.click(ALEX, status, 'jit.cancel').status == 200
    wait_until(lambda: store.get(request_id).status is S.CANCELLED, timeout=10, what='cancelled')
    _settles(slack, status, buttons=[], says='Cancelled')
    _settles(slack, sam_copy, buttons=[], says='Cancelled')


def test_limits_on_waiting_and_hourly_requests(jit, slack, store):
    """2 waiting at once, 3 an hour: refusals say why and what to do, and store nothing."""
    first = _file(slack, 'request prod-db admin 30m one')
    second = _file(slack, 'request prod-db admin 30m two')
    events = len(store.audit_events())
    refused = slack.driver.slash(ALEX, 'request prod-db admin 30m three')
    assert refused.status == 200 and 'already have 2 requests waiting' in refused.text
    assert first in refused.text and second in refused.text and '/jit cancel' in refused.text
    assert len(store.for_user(ALEX)) == 2 and len(store.audit_events()) == events
    assert 'Filed' in slack.driver.slash(DANA, 'request prod-db admin 30m dana has her own limits').text

    assert 'Cancelled' in slack.driver.slash(ALEX, f'cancel {first}').text
    third = _file(slack, 'request prod-db admin 30m three')  # the third of the hour
    for request_id in (second, third):
        slack.driver.slash(ALEX, f'cancel {request_id}')
    refused = slack.driver.slash(ALEX, 'request prod-db admin 30m four')
    assert 'filed 3 requests in the last hour' in refused.text and 'Try again in 1h' in refused.text
    assert len(store.for_user(ALEX)) == 3
    # The request form answers the same, on the form.
    slack.driver.slash(ALEX, 'request')
    view = slack.workspace.wait_for(lambda: next(iter(slack.workspace.views_for(ALEX)), None), timeout=10)
    answer = slack.driver.submit_view(ALEX, view, {'access': 'prod-db:admin', 'reason': 'from the form'})
    assert answer.response_action == 'errors' and 'last hour' in next(iter(answer.errors.values()))
    assert len(store.for_user(ALEX)) == 3
