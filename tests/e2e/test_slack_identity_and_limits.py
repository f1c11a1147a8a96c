"""Who may act, and the limits: identities refused on every path, ``users.info`` cached, a rate-limited Slack
(HTTP 429, ``Retry-After``) delaying messages but never an ack or a grant, and the per-person limits holding
for extension requests and ``/jit ssh-key`` too."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bot.core.model import RequestStatus
from tests.e2e.test_lifecycle import active_grant
from tests.e2e.test_request_flow import approval_copy, file_request
from tests.support.processes import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.redis]
ALEX, SAM = 'U0ALEX', 'U0SAM'
S = RequestStatus
#: The seeded workspace's users jit must refuse, and the words of each refusal.
REFUSED = {'U0GONE': 'Deactivated', 'U0BOT': 'Bots may not', 'U0GUEST': 'Guest accounts',
           'U0OTHER': 'another workspace'}  # fmt: skip


@pytest.mark.both_transports
@pytest.mark.parametrize('user', sorted(REFUSED))
def test_refused_identities_can_neither_request_nor_approve(jit, slack, store, user):
    reply = slack.driver.slash(user, 'request demo-app read 20m x')
    assert reply.status == 200 and REFUSED[user] in (reply.text or ''), reply.body
    assert store.for_user(user) == []
    request_id, _ = file_request(slack)
    copy = approval_copy(slack, SAM, request_id)
    assert slack.driver.click(user, copy, 'jit.approve', strict=False).status == 200  # a crafted click
    slack.workspace.wait_for(
        lambda: any(REFUSED[user] in m.text for m in slack.workspace.ephemerals(user) + slack.workspace.dms_to(user)),
        timeout=10,
    )  # fmt: skip
    assert store.get(request_id).status is S.PENDING and store.get(request_id).approvals == ()


def test_users_info_is_asked_once_per_user_for_minutes(jit, slack):
    for text in ('list', 'resources', 'help me', 'list', 'request demo-app read 20m cached?'):
        assert slack.driver.slash(ALEX, text).status == 200
    asked = [c for c in slack.calls_to('users.info') if c.params.get('user') == ALEX]
    assert len(asked) == 1


def test_a_rate_limited_slack_delays_messages_not_acks_or_grants(jit, slack, webhook, store):
    request_id, _ = file_request(slack, text='request demo-app read 1m rate limits')
    copy = approval_copy(slack, SAM, request_id)
    slack.driver.slash(SAM, 'list')  # sam's identity is cached now, as it is after his first use
    slack.rate_limit_next(4, retry_after=2)  # the next four Web API calls: HTTP 429, Retry-After: 2
    clicked = time.monotonic()
    reply = slack.driver.click(SAM, copy, 'jit.approve')
    assert reply.acked_in_time and reply.elapsed < 1.0
    wait_until(lambda: webhook.grants_for(request_id), timeout=10, what='the grant')
    granted_after = time.monotonic() - clicked
    assert granted_after < 2.0, 'the grant does not wait for Slack'
    # The messages arrive once Slack takes calls again: retried by slack_sdk's RateLimitErrorRetryHandler.
    slack.workspace.wait_for_message(
        lambda m: m.channel == slack.workspace.dm_channel_id(ALEX) and 'Granted' in m.content
        and request_id in m.content,
        timeout=20,
    )  # fmt: skip
    limited = [c for c in slack.calls if c.status == 429]
    assert len(limited) == 4
    assert store.get(request_id).status is S.ACTIVE


@pytest.mark.both_transports
def test_a_slow_users_info_gets_an_answer_in_time_and_files_nothing(jit, slack, store):
    """users.info rate-limited twice (Retry-After 2) for a user jit has not seen yet: `/jit request` is answered
    within Slack's 3 s, says Slack is slow and files nothing (the answer and the record agree); asked again once
    Slack answers, it is filed."""
    slack.driver.slash(SAM, 'list')  # jit has met Slack (auth.test) and sam, not alex
    # users.info alone: another call (a DM of the worker's) taking one of the 429s would halve the delay
    slack.rate_limit_next(2, retry_after=2, method='users.info')
    reply = slack.driver.slash(ALEX, 'request demo-app read 20m slow slack')
    assert reply.status == 200 and reply.acked_in_time and reply.elapsed < 3.0, reply
    assert 'Slack is slow' in (reply.text or ''), reply.body
    time.sleep(5)  # the lookup finishes in the background meanwhile
    limited = [(c.method, c.params.get('user')) for c in slack.calls if c.status == 429]
    assert limited == [('users.info', ALEX)] * 2, limited
    assert store.for_user(ALEX) == [], 'filed although the user was told it was not'
    assert not slack.workspace.dms_to(SAM)
    again = slack.driver.slash(ALEX, 'request demo-app read 20m slow slack')
    assert 'Filed' in (again.text or ''), again.body
    assert len(store.for_user(ALEX)) == 1


def test_extension_requests_count_in_the_open_request_limit(jit, slack, store):
    """Eight `/jit extend ID 20m` (past demo-read's self_extend, so each asks the approvers) with the default
    limit of 5 waiting requests: five are filed, three refused, and sam gets five approval copies, not eight."""
    request_id = active_grant(slack, store)
    replies = [slack.driver.slash(ALEX, f'extend {request_id} 20m more time {n}') for n in range(8)]
    assert all(r.status == 200 for r in replies), [r.body for r in replies]
    filed = [r.text.split('`')[1] for r in replies if 'needs approval' in (r.text or '')]
    refused = [r for r in replies if 'Not filed' in (r.text or '')]
    assert (len(filed), len(refused)) == (5, 3), [r.text for r in replies]
    for extension_id in filed:
        approval_copy(slack, SAM, extension_id)
    time.sleep(2)  # the notify follower would have posted a copy of any further filing by now
    dm = slack.workspace.dm_channel_id(SAM)
    copies = [m for m in slack.workspace.messages(dm)
              if f'extend `{request_id}`' in m.content and 'Reminder' not in m.text]  # fmt: skip
    assert len(copies) == 5, [m.content for m in copies]
    waiting = [r for r in store.for_user(ALEX) if r.extends == request_id]
    assert sorted(r.id for r in waiting) == sorted(filed)


def ssh_public_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


def test_the_same_ssh_key_again_records_nothing_and_key_changes_are_rate_limited(jit, slack, store):
    """30 identical `/jit ssh-key` give one audit event (each is answered with the fingerprint); of eleven key
    changes within the hour the eleventh is refused and the tenth key stays."""

    def registered() -> list[dict]:
        return [e for e in store.audit_events() if e['event'] == 'ssh_key.registered' and e['actor'] == ALEX]

    first = ssh_public_key()
    for _ in range(30):
        reply = slack.driver.slash(ALEX, f'ssh-key {first}')
        assert reply.status == 200 and 'SHA256:' in (reply.text or ''), reply.body
    assert len(registered()) == 1
    others = [ssh_public_key() for _ in range(10)]
    for key in others[:9]:
        reply = slack.driver.slash(ALEX, f'ssh-key {key}')
        assert 'Registered your SSH key' in (reply.text or ''), reply.body
    refused = slack.driver.slash(ALEX, f'ssh-key {others[9]}')
    assert refused.status == 200 and 'Not changed' in (refused.text or ''), refused.body
    assert store.ssh_key(ALEX) == others[8]
    assert len(registered()) == 10
