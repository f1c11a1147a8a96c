"""A grant's life after approval, end to end: release, admin revoke, cancel, and undecided requests expiring.

Release and revoke reach the provider before the state says revoked; a refused attempt changes nothing.
"""

from __future__ import annotations

import concurrent.futures
import re
import subprocess
import time
from datetime import datetime

import pytest
import redis

from bot.core.model import RequestStatus
from bot.sandbox.webhook_target import WebhookTarget
from tests.e2e.test_request_flow import ALEX, EVE, SAM, SEC, approval_copy, file_request
from tests.support.processes import wait_until
from tests.support.slack import WEBHOOK_SECRET

pytestmark = [pytest.mark.e2e, pytest.mark.redis]
#: The end told in a message: the word 'ended' (an extension's 'extended' is not it).
ENDED = re.compile(r'\bended\b')
S = RequestStatus


def active_grant(slack, store, text='request demo-app read 5m lifecycle test'):
    request_id, _ = file_request(slack, text=text)
    slack.driver.click(SAM, approval_copy(slack, SAM, request_id), 'jit.approve')
    wait_until(lambda: store.get(request_id).status is S.ACTIVE, timeout=15, what='active grant')
    return request_id


def revoked_event(store, request_id):
    return next(e for e in store.audit_events() if e['event'] == 'grant.revoked' and e['request']['id'] == request_id)


@pytest.mark.both_transports
def test_release_by_the_grantee_and_only_the_grantee(jit, slack, webhook, store):
    """eve cannot release alex's grant, sam (not an admin) cannot revoke it; alex releases it: revoked at once."""
    request_id = active_grant(slack, store)
    assert 'Only the grantee' in slack.driver.slash(EVE, f'release {request_id}').text
    assert 'Only admins' in slack.driver.slash(SAM, f'revoke {request_id}').text
    time.sleep(1)
    assert webhook.revokes_for(request_id) == [] and store.get(request_id).status is S.ACTIVE

    asked = time.time()
    assert 'Releasing' in slack.driver.slash(ALEX, f'release {request_id}').text
    revoke = wait_until(lambda: webhook.revokes_for(request_id), timeout=10, what='revoke at the provider')[0]
    assert revoke.time - asked < 3
    wait_until(lambda: store.get(request_id).status is S.REVOKED, timeout=5, what='revoked')
    event = revoked_event(store, request_id)
    assert (event['actor'], event['detail']['why']) == (ALEX, 'released')
    assert 'no active grant' in slack.driver.slash(ALEX, f'release {request_id}').text
    dm = slack.workspace.dm_channel_id(ALEX)
    slack.workspace.wait_for_message(lambda m: m.channel == dm and 'Access ended' in m.content, timeout=10)


def test_admin_revokes_anyones_grant(jit, slack, webhook, store):
    """sec is an admin: `/jit revoke ID` ends alex's grant; the audit names sec and why."""
    request_id = active_grant(slack, store)
    assert 'Revoking' in slack.driver.slash(SEC, f'revoke {request_id}').text
    wait_until(lambda: store.get(request_id).status is S.REVOKED, timeout=10, what='revoked')
    assert len(webhook.revokes_for(request_id)) == 1
    event = revoked_event(store, request_id)
    assert (event['actor'], event['detail']['why']) == (SEC, 'revoked by an admin')


def test_a_lost_release_job_still_releases(jit, slack, webhook, store, redis_url):
    """The release job is deleted while no worker runs: the sweeper still ends the grant, as a release."""
    request_id = active_grant(slack, store)
    jit.kill_worker()
    reply = slack.driver.slash(ALEX, f'release {request_id}')
    rq = redis.Redis.from_url(redis_url)

    def lost() -> bool:
        """Take the job out of the queue, or out of RQ's intermediate list: a killed worker's blocking LMOVE
        can still be served when Redis reads the release before the closed connection, and moves the job there."""
        job = f'end-{request_id}'
        return rq.lrem('rq:queue:jit-access', 0, job) + rq.lrem('rq:queue:jit-access:intermediate', 0, job) == 1

    # On a loaded machine the answer may come after the driver stopped waiting for it: the job is queued by then
    # or soon after, and it is that job this test loses.
    wait_until(lost, timeout=10, what=f'the release job to be queued (the answer was {reply})')
    rq.delete(f'rq:job:end-{request_id}')
    jit.start_worker()
    wait_until(lambda: store.get(request_id).status is S.REVOKED, timeout=10, what='revoked by the sweeper')
    assert revoked_event(store, request_id)['detail']['why'] == 'released'
    assert len(webhook.revokes_for(request_id)) == 1


@pytest.mark.both_transports
def test_cancel_a_pending_request(jit, slack, webhook, store):
    """Only the requester cancels; every approval copy then shows it, without buttons."""
    request_id, _ = file_request(slack, text='request demo-app read 5m changed my mind')
    approval_copy(slack, SEC, request_id)
    assert 'Only the requester' in slack.driver.slash(EVE, f'cancel {request_id}').text
    assert store.get(request_id).status is S.PENDING
    assert 'Cancelled' in slack.driver.slash(ALEX, f'cancel {request_id}').text
    assert store.get(request_id).status is S.CANCELLED
    slack.workspace.wait_for_message(lambda m: m.channel == slack.workspace.dm_channel_id(SEC)
                                     and request_id in m.content and 'Cancelled' in m.content and not m.action_ids,
                                     timeout=10)  # fmt: skip
    assert webhook.grants_for(request_id) == []


def test_undecided_request_expires(jit, slack, webhook, store):
    """demo-deploy has pending_timeout 6s: nobody decides, the request expires and everyone sees it."""
    request_id, _ = file_request(slack, text='request demo-app deploy 10m release 1.4')
    copy = approval_copy(slack, SAM, request_id)
    wait_until(lambda: store.get(request_id).status is S.EXPIRED, timeout=15, what='expired')
    assert [e['event'] for e in store.audit_events() if (e.get('request') or {}).get('id') == request_id] == [
        'request.created',
        'request.expired',
    ]
    slack.workspace.wait_for_message(lambda m: m.channel == slack.workspace.dm_channel_id(ALEX)
                                     and request_id in m.content and 'expired' in m.content, timeout=10)  # fmt: skip
    assert slack.driver.click(SAM, copy, 'jit.approve', strict=False).status == 200
    time.sleep(1)
    assert store.get(request_id).status is S.EXPIRED and webhook.grants_for(request_id) == []


@pytest.mark.both_transports
def test_self_extend_moves_the_revoke(jit, slack, webhook, store):
    """Within self_extend (1m in all) the grantee extends at once; the revoke comes at the new end, not the old."""
    request_id = active_grant(slack, store, text='request demo-app read 12s short one')
    assert 'Only the grantee' in slack.driver.slash(EVE, f'extend {request_id} 10s').text
    old_end = store.get(request_id).expires_at
    reply = slack.driver.slash(ALEX, f'extend {request_id} 10s')
    assert 'extended' in reply.text, reply.text
    grant = store.get(request_id)
    assert grant.expires_at == pytest.approx(old_end + 10)
    # The provider's own expiry moves too: the webhook gets the grant again with the new end.
    pushed = wait_until(lambda: webhook.grants_for(request_id)[1:], timeout=10, what='the new end at the provider')
    new_end = datetime.fromisoformat(pushed[0].body['expires_at'].replace('Z', '+00:00')).timestamp()
    assert new_end == pytest.approx(grant.expires_at, abs=0.01) and pushed[0].ok
    time.sleep(max(0.0, old_end - time.time()) + 3)
    assert webhook.revokes_for(request_id) == [], 'revoked at the old end'
    revoke = wait_until(lambda: webhook.revokes_for(request_id), timeout=15, what='revoke at the new end')[0]
    assert -0.5 < revoke.time - grant.expires_at < 5
    extended = [e for e in store.audit_events() if e['event'] == 'grant.extended']
    assert len(extended) == 1 and extended[0]['actor'] == ALEX and extended[0]['detail']['by'] == 10


def test_extension_beyond_self_extend_needs_approval_and_the_cap_holds(jit, slack, webhook, store):
    """Past self_extend the extension is a request approvers decide; past the rule's timeout it is refused."""
    request_id = active_grant(slack, store)
    assert 'at most 2h' in slack.driver.slash(ALEX, f'extend {request_id} 2h').text
    reply = slack.driver.slash(ALEX, f'extend {request_id} 20m still debugging')
    assert 'needs approval' in reply.text, reply.text
    extension_id = reply.text.split('`')[1]
    before = store.get(request_id).expires_at
    copy = approval_copy(slack, SAM, extension_id)
    assert f'extend `{request_id}`' in copy.content
    slack.driver.click(SAM, copy, 'jit.approve')
    wait_until(lambda: store.get(request_id).expires_at == pytest.approx(before + 1200), timeout=15, what='moved')
    wait_until(lambda: store.get(extension_id).status is S.ACTIVE, timeout=10, what='extension active')
    # The provider's own expiry moves with it: the grant sent again with the new end; nothing for the extension.
    pushed = wait_until(lambda: webhook.grants_for(request_id)[1:], timeout=10, what='the new end at the provider')
    new_end = datetime.fromisoformat(pushed[0].body['expires_at'].replace('Z', '+00:00')).timestamp()
    assert len(webhook.grants_for(request_id)) == 2 and new_end == pytest.approx(before + 1200, abs=0.01)
    assert webhook.grants_for(extension_id) == []
    assert store.due_at(request_id) == pytest.approx(before + 1200)


def test_two_approved_extensions_never_take_a_grant_past_its_rule(jit, slack, webhook, store):
    """A 5 minute grant (demo-read: timeout 2h) and two 1h extension requests, each within the rule when filed,
    both approved: the first is applied, the second fails when applied, and the grant lasts 65 minutes, not 125."""
    request_id = active_grant(slack, store)
    extensions = []
    for words in ('first hour', 'second hour'):
        reply = slack.driver.slash(ALEX, f'extend {request_id} 1h {words}')
        assert 'needs approval' in reply.text, reply.text
        extensions.append(reply.text.split('`')[1])
    for extension_id, status in zip(extensions, (S.ACTIVE, S.FAILED), strict=True):
        assert slack.driver.click(SAM, approval_copy(slack, SAM, extension_id), 'jit.approve').status == 200
        wait_until(lambda e=extension_id: store.get(e).status in (S.ACTIVE, S.FAILED), timeout=15, what='applied')
        assert store.get(extension_id).status is status, store.get(extension_id)
    assert 'longer than rule `demo-read` allows' in store.get(extensions[1]).error
    grant = store.get(request_id)
    assert grant.expires_at - grant.granted_at == pytest.approx(65 * 60)
    assert store.due_at(request_id) == pytest.approx(grant.expires_at)


def test_concurrent_extensions_never_take_a_grant_past_its_rule(jit, slack, webhook, store):
    """Eight `/jit extend ID 40s` at once on a 12 s grant (demo-read: self_extend 1m in all), three times (each
    filing counts in the hourly limit of 20): each time one is applied at once, the others become requests for
    approval or are refused, and the grant's total stays within the minute."""
    for trial in range(3):
        request_id = active_grant(slack, store, text=f'request demo-app read 12s racing extensions {trial}')
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda _, r=request_id: slack.driver.slash(ALEX, f'extend {r} 40s race'), range(8)))
        texts = [r.text or '' for r in replies]
        assert len([t for t in texts if 'extended: it now ends' in t]) == 1, (trial, texts)
        grant = store.get(request_id)
        assert grant.expires_at - grant.granted_at <= 60, (trial, texts)
        assert store.due_at(request_id) == pytest.approx(grant.expires_at)
        for extension in [r for r in store.for_user(ALEX) if r.extends == request_id and r.status is S.PENDING]:
            slack.driver.slash(ALEX, f'cancel {extension.id}')  # room under the open-request limit for the next


def test_ends_soon_warning_offers_extend_and_release(jit, slack, webhook, store):
    """A quarter before the end (short grants) alex is warned, with Extend and Release buttons that work."""
    request_id = active_grant(slack, store, text='request demo-app read 12s warn me')
    grant = store.get(request_id)
    dm = slack.workspace.dm_channel_id(ALEX)
    warning = slack.workspace.wait_for_message(
        lambda m: m.channel == dm and 'ends at' in m.content and request_id in m.content, timeout=15
    )
    assert time.time() < grant.expires_at  # before the end, not after
    assert warning.action_ids == ['jit.extend', 'jit.release'] and 'Extend 12s' in warning.content
    assert slack.driver.click(ALEX, warning, 'jit.extend').status == 200
    wait_until(lambda: store.get(request_id).expires_at == pytest.approx(grant.expires_at + 12), timeout=5,
               what='extended by the button')  # fmt: skip
    assert slack.driver.click(ALEX, warning, 'jit.release').status == 200
    wait_until(lambda: store.get(request_id).status is S.REVOKED, timeout=10, what='released by the button')
    assert revoked_event(store, request_id)['detail']['why'] == 'released'
    # Once the grant has ended, the warning (and its buttons) goes: one message tells the end, posted at the end.
    wait_until(lambda: slack.workspace.message(dm, warning.ts) is None, timeout=10, what='the warning deleted')
    ended_at = store.get(request_id).ended_at

    def ends():  # 'ended', not the 'extended' of the extension's line
        return [m for m in slack.workspace.messages(dm)
                if request_id in m.content and float(m.ts) > float(warning.ts) and ENDED.search(m.content)]  # fmt: skip

    # The end is told by the delivery that deleted the warning, right after it: on a loaded machine, a moment later.
    wait_until(ends, timeout=10, what='the "Access ended" DM')
    time.sleep(1)  # a second telling of the end, if there were one, would come with the same delivery
    told = ends()
    assert len(told) == 1 and 'Access ended' in told[0].content, [m.content for m in told]
    assert float(told[0].ts) >= ended_at - 0.5, 'told at the end, not before it'


def test_a_grant_that_runs_out_is_told_ended_once_at_its_end(jit, slack, webhook, store):
    """The "ends soon" DM is not edited to "has ended" (it would keep its time from before the end) beside an
    "Access ended" DM: the warning goes at the end, and one message, posted then, tells the end."""
    request_id = active_grant(slack, store, text='request demo-app read 10s runs out')
    dm = slack.workspace.dm_channel_id(ALEX)
    warning = slack.workspace.wait_for_message(
        lambda m: m.channel == dm and 'ends at' in m.content and request_id in m.content, timeout=15
    )
    wait_until(lambda: store.get(request_id).status is S.REVOKED, timeout=20, what='revoked at its end')
    wait_until(lambda: slack.workspace.message(dm, warning.ts) is None, timeout=10, what='the warning deleted')
    grant = store.get(request_id)

    def ends():
        return [m for m in slack.workspace.messages(dm) if request_id in m.content and ENDED.search(m.content)]

    # The end is told by the delivery that deleted the warning, right after it: on a loaded machine, a moment later.
    wait_until(ends, timeout=10, what='the "Access ended" DM')
    time.sleep(1)  # a second telling of the end, if there were one, would come with the same delivery
    told = ends()
    assert len(told) == 1 and 'Access ended' in told[0].content, [m.content for m in told]
    assert float(told[0].ts) >= grant.expires_at, 'posted at the end, not before it'
    assert not [m for m in slack.workspace.messages(dm) if request_id in m.content and m.action_ids]


def test_approvers_are_reminded_then_less_often(jit, slack, store):
    """JIT_REMINDER_AFTER=3 here: reminders at about 3 s and 9 s (the wait doubles), to each approver once each."""
    request_id, _ = file_request(slack, text='request demo-app read 5m please look')
    dm = slack.workspace.dm_channel_id(SAM)

    def reminders():
        return [m for m in slack.workspace.messages(dm) if 'Reminder' in m.content and request_id in m.content]

    wait_until(lambda: len(reminders()) == 1, timeout=8, what='first reminder')
    time.sleep(3)
    assert len(reminders()) == 1, 'the second reminder waits twice as long'
    wait_until(lambda: len(reminders()) == 2, timeout=8, what='second reminder')
    assert 'Reminder 2' in reminders()[-1].content
    assert not [m for m in slack.workspace.messages(slack.workspace.dm_channel_id(ALEX)) if 'Reminder' in m.content]


def test_reconciler_revokes_grants_jit_no_longer_knows(jit, slack, webhook, store, redis_url):
    """Redis is flushed with a grant live at the provider: the reconciler (at worker start) revokes it, audited."""
    request_id = active_grant(slack, store, text='request demo-app read 30m lost record')
    jit.kill_worker()
    redis.Redis.from_url(redis_url).flushdb()
    assert request_id in webhook.active
    jit.start_worker()
    wait_until(lambda: request_id not in webhook.active, timeout=15, what='orphan revoked by the reconciler')
    # Recorded just after the provider confirmed (the reconciler revokes first, then writes the event).
    events = wait_until(lambda: [e for e in store.audit_events() if e['event'] == 'grant.revoked'], timeout=5,
                        what='the orphan revoke in the audit trail')  # fmt: skip
    assert len(events) == 1 and events[0]['actor'] == 'reconciler'
    assert events[0]['request']['id'] == request_id and 'not known to jit' in events[0]['detail']['why']


def test_ssh_key_is_registered_through_slack(jit, slack, store, tmp_path):
    """`/jit ssh-key` stores the key the ssh provider signs for; a bad paste is answered, only to the user."""
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(tmp_path / 'k')], check=True)
    pub = (tmp_path / 'k.pub').read_text().strip()
    assert 'No SSH key yet' in slack.driver.slash(ALEX, 'ssh-key').text
    reply = slack.driver.slash(ALEX, f'ssh-key {pub}')
    assert 'Registered your SSH key `SHA256:' in reply.text, reply.text
    assert store.ssh_key(ALEX) == ' '.join(pub.split()[:2])
    assert reply.text.split('`')[1] in slack.driver.slash(ALEX, 'ssh-key').text
    refused = slack.driver.slash(ALEX, 'ssh-key ssh-rsa nonsense')
    assert refused.status == 200 and 'not an OpenSSH public key' in refused.text
    assert store.ssh_key(ALEX) == ' '.join(pub.split()[:2]), 'a refused paste changes nothing'


def test_an_admin_revoke_while_the_worker_is_down_is_not_undone_by_an_extension(jit, slack, webhook, store):
    """The worker is down; sec revokes alex's grant, then alex extends it: the extension is refused, and once a
    worker runs again the grant is revoked, and the record blames sec."""
    request_id = active_grant(slack, store, text='request demo-app read 20s short')  # 20s + 30s: self_extend
    jit.kill_worker()
    assert 'Revoking' in slack.driver.slash(SEC, f'revoke {request_id}').text
    due = store.due_at(request_id)
    reply = slack.driver.slash(ALEX, f'extend {request_id} 30s')
    assert 'already ending' in reply.text, reply.text
    assert store.due_at(request_id) == due and store.get(request_id).expires_at == pytest.approx(
        store.get(request_id).granted_at + 20
    )
    jit.start_worker()
    wait_until(lambda: store.get(request_id).status is S.REVOKED, timeout=15, what='revoked')
    event = revoked_event(store, request_id)
    assert (event['actor'], event['detail']['why']) == (SEC, 'revoked by an admin')
    assert not [e for e in store.audit_events() if e['event'] == 'grant.extended']


def test_the_revoke_goes_where_the_grant_was_made_whatever_the_policy_says_now(jit, slack, webhook, store, tmp_path):
    """A pull request moves demo-app's webhook to another URL while alex's grant is active: the release still
    reaches the receiver that granted it, and the new one hears nothing of it."""
    other = WebhookTarget(WEBHOOK_SECRET)
    other.start_in_thread()
    try:
        request_id = active_grant(slack, store)
        loads = len([e for e in store.audit_events() if e['event'] == 'policy.loaded'])
        policy = tmp_path / 'policies' / 'policy.yaml'
        policy.write_text(policy.read_text().replace('url: env:DEMO_WEBHOOK_URL', f'url: "{other.url}"'))
        wait_until(lambda: len([e for e in store.audit_events() if e['event'] == 'policy.loaded']) > loads,
                   timeout=15, what='the new policy in force')  # fmt: skip
        time.sleep(2.5)  # the worker looks at the files at most every 2 s
        assert 'Releasing' in slack.driver.slash(ALEX, f'release {request_id}').text
        wait_until(lambda: webhook.revokes_for(request_id), timeout=15, what='the revoke at the original receiver')
        wait_until(lambda: store.get(request_id).status is S.REVOKED, timeout=10, what='revoked')
        assert other.revokes_for(request_id) == [] and other.grants_for(request_id) == []
        assert store.get(request_id).granted_with['settings']['url'] == 'env:DEMO_WEBHOOK_URL'
    finally:
        other.stop_thread()


def test_the_webhook_is_told_the_end_the_grant_really_has(jit, slack, webhook, store):
    """The grant call's `expires_at` is now + duration plus at most the stated activation margin (30 s), never
    the end of the grant's retry window (5 minutes later): a receiver that enforces it ends access on time."""
    request_id = active_grant(slack, store, text='request demo-app read 20s checking the end')
    grant = store.get(request_id)
    told = webhook.grants_for(request_id)[0].body['expires_at']
    told_at = datetime.fromisoformat(told.replace('Z', '+00:00')).timestamp()
    assert 0 <= told_at - grant.expires_at <= 31, (told, grant.expires_at)
