"""The spine, end to end: /jit request in Slack -> policy -> Approve -> RQ grant -> revoke on time -> audit.

Real HTTP between every part: the local Slack signs requests to ``jit serve`` and serves the Web
API the bot and worker call; ``jit worker`` (a real RQ worker with its scheduler and sweeper)
grants and revokes through a real webhook receiver; everything is stored in a real Redis.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import hmac
import json
import time
import urllib.parse

import pytest

from bot.core.model import GENESIS_HASH, RequestStatus, chain_hash
from bot.sandbox import _payloads
from tests.support.processes import wait_until
from tests.support.slack import SIGNING_SECRET

pytestmark = [pytest.mark.e2e, pytest.mark.redis]
ALEX, SAM, SEC, EVE = 'U0ALEX', 'U0SAM', 'U0SEC', 'U0EVE'
S = RequestStatus


def request_id_from(reply_text: str) -> str:
    return reply_text.split('`')[1]


def approval_copy(slack, user: str, request_id: str):
    """The approval message in ``user``'s DM for ``request_id`` (waits for the notify job)."""
    return slack.workspace.wait_for_message(
        lambda m: (
            m.channel == slack.workspace.dm_channel_id(user) and request_id in m.content and 'Reminder' not in m.text
        ),
        timeout=15,
    )


def file_request(slack, user=ALEX, text='request demo-app read 20s checking the deploy'):
    reply = slack.driver.slash(user, text)
    assert reply.status == 200, reply.body
    assert 'Filed' in (reply.text or ''), reply.text
    return request_id_from(reply.text), reply


@pytest.mark.both_transports
def test_happy_path_grant_and_revoke_on_time(jit, slack, webhook, store):
    """alex asks, sam approves, the webhook grants, and 20 s later the webhook revokes - at most 5 s late."""
    request_id, reply = file_request(slack)
    assert reply.acked_in_time and reply.elapsed < 1.0
    assert store.get(request_id).status is S.PENDING
    copy = approval_copy(slack, SAM, request_id)
    assert {'jit.approve', 'jit.deny'} <= set(copy.action_ids)
    assert 'checking the deploy' in copy.content and '20s' in copy.content
    approval_copy(slack, SEC, request_id)  # every approver gets a copy

    clicked = time.time()
    assert slack.driver.click(SAM, copy, 'jit.approve').status == 200
    grant = wait_until(lambda: webhook.grants_for(request_id), timeout=15, what='webhook grant')[0]
    approve_to_grant = grant.time - clicked
    assert grant.body['user'] == {'slack_id': ALEX, 'email': 'alex@example.com'}
    assert (grant.body['resource'], grant.body['role'], grant.body['reason']) == (
        'demo-app',
        'read',
        'checking the deploy',
    )
    active = wait_until(lambda: (r := store.get(request_id)).status is S.ACTIVE and r, timeout=10, what='active')
    assert active.expires_at == pytest.approx(active.granted_at + 20)
    slack.workspace.wait_for_message(
        lambda m: (
            m.channel == slack.workspace.dm_channel_id(ALEX) and 'Granted' in m.content and 'Auto-revokes' in m.content
        ),
        timeout=10,
    )
    # Every copy of the approval message lost its buttons and names the approver.
    for user in (SAM, SEC):
        copy = slack.workspace.wait_for_message(
            lambda m, u=user: (
                m.channel == slack.workspace.dm_channel_id(u) and request_id in m.content and 'Approved by' in m.content
            )
        )
        assert copy.action_ids == []

    revoke = wait_until(lambda: webhook.revokes_for(request_id), timeout=40, what='webhook revoke')[0]
    lateness = revoke.time - active.expires_at
    assert -0.5 <= lateness <= 5.0, lateness
    wait_until(lambda: store.get(request_id).status is S.REVOKED, timeout=10, what='revoked state')
    assert request_id not in webhook.active
    slack.workspace.wait_for_message(
        lambda m: m.channel == slack.workspace.dm_channel_id(ALEX) and 'Access ended' in m.content, timeout=10
    )
    print(
        f'\nFIGURES ack={reply.elapsed * 1000:.0f}ms approve->grant={approve_to_grant * 1000:.0f}ms '
        f'revoke lateness={lateness * 1000:.0f}ms'
    )

    # The audit trail: one event per transition, hash-chained, mirrored line by line to the audit channel.
    events = [e for e in store.audit_events() if (e.get('request') or {}).get('id') == request_id]
    assert [e['event'] for e in events] == [
        'request.created',
        'request.approved',
        'grant.started',
        'grant.active',
        'grant.revoked',
    ]
    assert events[1]['actor'] == SAM and events[1]['policy_version']
    # The policy's reason reads the same in the audit event, the approval message and the requester's answer.
    reason = events[0]['detail']['decision']
    assert reason == 'rule `demo-read` needs approval by 1 of group:leads, group:security'
    assert reason in copy.content and reason[1:] in reply.text
    prev = GENESIS_HASH
    for event in store.audit_events():
        assert event['prev_hash'] == prev and event['hash'] == chain_hash(event, prev)
        prev = event['hash']
    lines = wait_until(lambda: len(m := [x for x in slack.workspace.messages('C0AUDIT') if request_id in x.content])
                       >= 5 and m, timeout=10, what='audit channel lines')  # fmt: skip
    assert any('grant.revoked' in line.content for line in lines)


@pytest.mark.both_transports
def test_deny_with_reason(jit, slack, webhook, store):
    """sam presses Deny, a modal asks why, alex is told who denied and why; nothing is granted."""
    request_id, _ = file_request(slack)
    copy = approval_copy(slack, SAM, request_id)
    assert slack.driver.click(SAM, copy, 'jit.deny').status == 200
    view = slack.workspace.wait_for(lambda: next(iter(slack.workspace.views_for(SAM)), None), timeout=10)
    reply = slack.driver.submit_view(SAM, view, {'deny_reason': 'not during the freeze'})
    assert reply.status == 200 and not reply.errors
    assert store.get(request_id).status is S.DENIED
    slack.workspace.wait_for_message(
        lambda m: (
            m.channel == slack.workspace.dm_channel_id(ALEX)
            and 'denied' in m.content
            and 'not during the freeze' in m.content
        ),
        timeout=10,
    )
    slack.workspace.wait_for_message(lambda m: m.channel == slack.workspace.dm_channel_id(SEC)
                                     and request_id in m.content and 'Denied by' in m.content and not m.action_ids,
                                     timeout=10)  # fmt: skip
    time.sleep(1)
    assert webhook.grants_for(request_id) == []


@pytest.mark.both_transports
def test_self_approval_and_non_approver_are_refused(jit, slack, webhook, store):
    """sam (a lead) requests: he gets no copy; a click as sam or eve (crafted on sec's copy) is refused."""
    request_id, _ = file_request(slack, user=SAM)
    copy = approval_copy(slack, SEC, request_id)

    def own():
        return [m for m in slack.workspace.messages(slack.workspace.dm_channel_id(SAM)) if request_id in m.content]

    # His status message and the approvers' copies come from one delivery (sec's is there): a copy for him would be.
    wait_until(own, timeout=10, what="sam's status message")
    assert [m.action_ids for m in own()] == [['jit.cancel']]  # his status message, no copy to approve
    for user, words in ((SAM, 'own request'), (EVE, 'not an approver')):
        assert slack.driver.click(user, copy, 'jit.approve', strict=False).status == 200

        def seen(u=user, w=words):
            return any(w in m.text for m in slack.workspace.ephemerals(u) + slack.workspace.dms_to(u))

        slack.workspace.wait_for(seen, timeout=5)
    assert store.get(request_id).status is S.PENDING
    assert [e['event'] for e in store.audit_events() if (e.get('request') or {}).get('id') == request_id] == [
        'request.created'
    ]
    assert webhook.grants_for(request_id) == []


@pytest.mark.both_transports
def test_twenty_concurrent_replays_grant_once(jit, slack, webhook, store):
    """One signed approve click replayed 20 times at once, plus a second approver: exactly one grant."""
    request_id, _ = file_request(slack, text='request demo-app read 1m replay test')
    copy = approval_copy(slack, SAM, request_id)
    sec_copy = approval_copy(slack, SEC, request_id)
    signed = slack.driver._click(SAM, copy, 'jit.approve', None, True)
    with concurrent.futures.ThreadPoolExecutor(max_workers=21) as pool:
        futures = [pool.submit(slack.driver.replay, signed) for _ in range(20)]
        futures.insert(10, pool.submit(slack.driver.click, SEC, sec_copy, 'jit.approve', strict=False))
        replies = [f.result() for f in futures]
    assert {r.status for r in replies} == {200}
    wait_until(lambda: store.get(request_id).status is S.ACTIVE, timeout=15, what='active')
    time.sleep(2)
    assert len(webhook.grants_for(request_id)) == 1
    approvals = [e for e in store.audit_events() if e['event'] == 'request.approved']
    assert len(approvals) == 1
    refused = [e for u in (SAM, SEC) for e in slack.workspace.ephemerals(u) if 'already' in e.text]
    assert len(refused) >= 1


@pytest.mark.parametrize('case', ['forged', 'stale', 'no-signature', 'bad-timestamp'])
def test_forged_and_stale_requests_change_nothing(jit, slack, webhook, store, redis_url, case):
    """Wrong signature or a 6-minute-old timestamp: 401; missing/malformed headers: 400. Nothing stored."""
    form = {
        'team_id': 'T0JIT',
        'user_id': ALEX,
        'command': '/jit',
        'text': 'request demo-app read 20s forged',
        'channel_id': 'D0ALEX',
        'trigger_id': 't',
        'response_url': slack.base_url + 'response/x',
    }
    body = urllib.parse.urlencode(form).encode()
    headers = {'Content-Type': 'application/x-www-form-urlencoded'}
    if case == 'forged':
        headers |= {**slack.driver.sign(body), 'X-Slack-Signature': 'v0=' + '0' * 64}
    elif case == 'stale':
        headers |= slack.driver.sign(body, timestamp=int(time.time()) - 360)
    elif case == 'bad-timestamp':
        headers |= {**slack.driver.sign(body), 'X-Slack-Request-Timestamp': 'yesterday'}
    before = store.audit_events()
    reply = slack.driver.post_raw(body, headers)
    assert reply.status == (401 if case in ('forged', 'stale') else 400), reply.body
    time.sleep(0.5)
    assert store.redis.keys('jit:req:*') == []
    assert store.audit_events() == before
    assert [e['event'] for e in before] == ['policy.loaded']  # only what jit serve recorded at start


@pytest.mark.both_transports
def test_policy_refusals_are_ephemeral_and_store_nothing(jit, slack, store):
    """Unknown resource, too long, no reason, not a requester: HTTP 200, a helpful text, nothing filed."""
    cases = [
        (ALEX, 'request nope read 20m x', 'no resource called'),
        (ALEX, 'request demo-app read 3h x', 'at most 2h'),
        (ALEX, 'request demo-app read 20m', 'requires a reason'),
        (EVE, 'request demo-app read 20m x', 'no rule lets you'),
        ('U0GUEST', 'request demo-app read 20m x', 'Guest accounts'),
        ('U0OTHER', 'request demo-app read 20m x', 'another workspace'),
    ]
    for user, text, words in cases:
        reply = slack.driver.slash(user, text)
        assert reply.status == 200 and words in (reply.text or ''), (text, reply.body)
    assert 'You may request: `demo-app read (up to 2h)`' in slack.driver.slash(ALEX, 'request nope').text
    assert store.redis.keys('jit:req:*') == []
    assert 'Usage' in slack.driver.slash(ALEX, 'frobnicate').text


def test_worker_killed_after_grant_still_revokes(jit, slack, webhook, store):
    """kill -9 the worker while a grant is active; after a restart the revoke still happens, promptly."""
    request_id, _ = file_request(slack, text='request demo-app read 12s chaos')
    slack.driver.click(SAM, approval_copy(slack, SAM, request_id), 'jit.approve')
    active = wait_until(lambda: (r := store.get(request_id)).status is S.ACTIVE and r, timeout=15, what='active')
    jit.kill_worker()
    time.sleep(max(0.0, active.expires_at - time.time()) + 3)
    assert webhook.revokes_for(request_id) == []  # nobody was there to revoke
    restarted = time.time()
    jit.start_worker()
    revoke = wait_until(lambda: webhook.revokes_for(request_id), timeout=20, what='revoke after restart')[0]
    assert revoke.time - restarted < 8
    wait_until(lambda: store.get(request_id).status is S.REVOKED, timeout=10, what='revoked')
    assert len(webhook.grants_for(request_id)) == 1
    print(f'\nFIGURES revoke after restart={(revoke.time - restarted) * 1000:.0f}ms')


def test_reason_with_the_word_payload_is_not_lost(jit, slack, store):
    """Bolt drops form bodies containing 'payload'; jit parses them as the slash command they are."""
    request_id, _ = file_request(slack, text='request demo-app read 20m fix the payload parser')
    assert store.get(request_id).reason == 'fix the payload parser'


@pytest.mark.parametrize(
    'body',
    [
        b'{"type": "block_actions", ',
        b'payload=%7Bnot-json',
        b'payload=[1,2]',
        b'\xff\xfe\x00garbage',
        b'payload=%7B%22type%22%3A%22nonsense%22%7D',
    ],
)
def test_signed_garbage_is_a_4xx_never_a_5xx(jit, slack, store, body):
    """Validly signed bodies that are not what Slack sends: a 4xx (or Bolt's 404 for unknown types), no 5xx."""
    stamp = str(int(time.time()))
    mac = hmac.new(SIGNING_SECRET.encode(), f'v0:{stamp}:'.encode() + body, hashlib.sha256).hexdigest()
    headers = {
        'Content-Type': 'application/x-www-form-urlencoded',
        'X-Slack-Request-Timestamp': stamp,
        'X-Slack-Signature': f'v0={mac}',
    }
    reply = slack.driver.post_raw(body, headers)
    assert 400 <= reply.status < 500, (reply.status, reply.body)
    assert store.redis.keys('jit:req:*') == []


@pytest.mark.both_transports
def test_request_modal_offers_only_what_the_user_may_request(jit, slack, store):
    """`/jit` alone opens a modal; refusals come back as field errors and file nothing; a good one is filed."""
    assert 'nothing you may request' in slack.driver.slash(EVE, '').text
    assert slack.driver.slash(ALEX, '').status == 200
    view = slack.workspace.wait_for(lambda: next(iter(slack.workspace.views_for(ALEX)), None), timeout=10)
    access = next(b for b in view.blocks if b['block_id'] == 'access')['element']['options']
    assert [o['value'] for o in access] == ['demo-app:read', 'demo-app:deploy']
    durations = next(b for b in view.blocks if b['block_id'] == 'duration')['element']['options']
    assert max(int(o['value']) for o in durations) == 7200, 'bounded by the longest rule (demo-read: 2h)'
    reason = next(b for b in view.blocks if b['block_id'] == 'reason')
    assert reason['optional'] and '(required for some choices' in reason['label']['text'], 'demo-read needs one'
    assert reason['hint']['text'] == 'Required for demo-app · read.'
    no_reason = slack.driver.submit_view(ALEX, view, {'access': 'demo-app:read', 'duration': '1800'})
    assert no_reason.status == 200 and set(no_reason.errors) == {'reason'}, no_reason.body
    too_long = slack.driver.submit_view(ALEX, view, {'access': 'demo-app:deploy', 'duration': '7200', 'reason': 'x'})
    assert set(too_long.errors) == {'duration'} and '1h' in too_long.errors['duration'], too_long.body
    forged_option = {
        'type': 'static_select',
        'selected_option': {'value': 'prod-db:admin', 'text': {'type': 'plain_text', 'text': 'x'}},
    }
    forged = slack.driver.submit_view(ALEX, view, {'access': {'access': forged_option}, 'reason': 'x'}, strict=False)
    assert forged.status == 200 and forged.errors, 'an option the modal never offered is refused'
    assert store.for_user(ALEX) == [], 'refusals filed nothing'
    good = {'access': 'demo-app:read', 'duration': '1800', 'reason': 'from the modal'}
    ok = slack.driver.submit_view(ALEX, view, good)
    assert ok.status == 200 and not ok.errors, ok.body
    [request] = store.for_user(ALEX)
    assert (request.resource, request.role, request.duration, request.reason) == ('demo-app', 'read', 1800,
                                                                                  'from the modal')  # fmt: skip
    slack.workspace.wait_for_message(
        lambda m: m.channel == slack.workspace.dm_channel_id(ALEX) and 'Your request' in m.content
        and request.id in m.content,
        timeout=10)  # fmt: skip


def _home_text(slack, user: str) -> str:
    home = slack.workspace.home_for(user)
    return json.dumps(home.blocks) if home else ''


@pytest.mark.both_transports
def test_app_home_lists_and_acts(jit, slack, webhook, store):
    """The Home tab: sam sees alex's request waiting and approves it there; alex sees the grant with time left
    and releases it there; each press publishes the tab again; eve sees nothing of either."""
    request_id, _ = file_request(slack, text='request demo-app read 10m from the home tab')
    assert slack.driver.open_home(SAM).status == 200
    slack.workspace.wait_for(lambda: request_id in _home_text(slack, SAM), timeout=10)
    assert 'from the home tab' in _home_text(slack, SAM) and '"jit.approve"' in _home_text(slack, SAM)
    assert slack.driver.click_home(SAM, 'jit.approve', request_id).status == 200
    wait_until(lambda: store.get(request_id).status is S.ACTIVE, timeout=15, what='granted from the home tab')
    slack.workspace.wait_for(lambda: request_id not in _home_text(slack, SAM), timeout=10)
    slack.driver.open_home(ALEX)
    slack.workspace.wait_for(lambda: 'left' in _home_text(slack, ALEX) and request_id in _home_text(slack, ALEX),
                             timeout=10)  # fmt: skip
    assert '"jit.release"' in _home_text(slack, ALEX) and '"jit.extend"' in _home_text(slack, ALEX)
    slack.driver.open_home(EVE)
    slack.workspace.wait_for(lambda: 'Nothing waits for you' in _home_text(slack, EVE), timeout=10)
    assert request_id not in _home_text(slack, EVE)
    assert slack.driver.click_home(ALEX, 'jit.release', request_id).status == 200
    wait_until(lambda: store.get(request_id).status is S.REVOKED, timeout=15, what='released from the home tab')
    assert webhook.revokes_for(request_id)


@pytest.mark.parametrize('extra', ['²', '9' * 60])
def test_a_forged_extend_button_value_is_refused_plainly(jit, slack, store, extra):
    """A crafted Extend click whose seconds are not plain ASCII digits (or absurdly many) is told it is malformed;
    nothing moves and nothing fails on the way."""
    request_id, _ = file_request(slack, text='request demo-app read 10m forged buttons')
    slack.driver.click(SAM, approval_copy(slack, SAM, request_id), 'jit.approve')
    wait_until(lambda: store.get(request_id).status is S.ACTIVE, timeout=15, what='active')
    slack.driver.open_home(ALEX)
    slack.workspace.wait_for(lambda: '"jit.extend"' in _home_text(slack, ALEX), timeout=10)
    before = store.get(request_id).expires_at
    payload = _payloads.home_actions(slack, ALEX, 'jit.extend', None)  # the real button, its value rewritten
    payload['actions'][0]['value'] = f'{request_id}|{extra}'
    assert slack.driver._send(slack.driver._interaction(payload)).status == 200
    slack.workspace.wait_for(
        lambda: any('malformed' in m.text for m in slack.workspace.ephemerals(ALEX) + slack.workspace.dms_to(ALEX)),
        timeout=10,
    )  # fmt: skip
    assert store.get(request_id).expires_at == before
    assert 'Traceback' not in jit.dump_logs()
