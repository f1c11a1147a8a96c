"""The pipeline API end to end: real ``jit serve`` and ``jit worker``, Redis, the local Slack, a webhook.

A pipeline files over HTTP with its bearer token; the policy decides (auto-approve, or approvers in
Slack); the worker grants through the webhook; the pipeline reads its sealed details once and releases.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bot.api.tokens import hash_token, new_token
from bot.core.model import RequestStatus
from bot.sealed_box import Recipient, SealedBoxError
from tests.e2e.test_request_flow import approval_copy
from tests.support.policies import E2E_POLICY, PIPELINE_RULES
from tests.support.processes import launch_jit, wait_until
from tests.support.reports import stop_and_show_logs
from tests.support.slack import SIGNING_SECRET, demo_webhook_env
from tests.test_openapi import DOC, conforms

pytestmark = [pytest.mark.e2e, pytest.mark.redis]
S = RequestStatus
SAM, ALEX = 'U0SAM', 'U0ALEX'
DEPLOY_TOKEN, NIGHTLY_TOKEN, OTHER_TOKEN = new_token(), new_token(), new_token()
SECRET_DETAIL = 'pw-' + 'x7Q2' * 6  # what the target hands out; must reach the pipeline and nowhere else


def _operation(method: str, path: str) -> str | None:
    """The OpenAPI path template a call goes to, or None for a route the document does not have."""
    for template, shape in (('/requests', r'/api/v1/requests'), ('/requests/{id}', r'/api/v1/requests/[^/]+'),
                            ('/requests/{id}/release', r'/api/v1/requests/[^/]+/release'),
                            ('/openapi.json', r'/api/v1/openapi\.json')):  # fmt: skip
        if re.fullmatch(shape, path) and method.lower() in DOC['paths'][template]:
            return template
    return None


class Api:
    """A bare HTTP client, as a pipeline without jit installed would have (urllib, JSON); every answer to a
    documented operation is checked against the OpenAPI document."""

    def __init__(self, base: str, token: str | None) -> None:
        self.base, self.token = base, token

    def call(self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
             raw: bytes | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:  # fmt: skip
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        sent = {'Content-Type': 'application/json'} if data is not None else {}
        if self.token:
            sent['Authorization'] = f'Bearer {self.token}'
        sent.update(headers or {})
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(req, timeout=10) as answer:
                status, got, headers = answer.status, json.loads(answer.read() or b'{}'), dict(answer.headers)
        except urllib.error.HTTPError as err:
            status, got, headers = err.code, json.loads(err.read() or b'{}'), dict(err.headers)
        template = _operation(method, path)
        if template is not None:
            conforms(template, method, status, got)
        return status, got, headers

    def status(self, request_id: str) -> str:
        return str(self.call('GET', f'/api/v1/requests/{request_id}')[1].get('status'))


@pytest.fixture(name='jit')
def _jit(tmp_path, redis_url, slack, webhook, request):
    procs = launch_jit(tmp_path, slack=slack, signing_secret=SIGNING_SECRET, redis_url=redis_url,
                       policy=E2E_POLICY + PIPELINE_RULES, JIT_AUDIT_CHANNEL='C0AUDIT', **demo_webhook_env(webhook),
                       JIT_MAX_OPEN_REQUESTS='2',
                       JIT_API_TOKENS=f'deploy-main:{hash_token(DEPLOY_TOKEN)}, nightly:{hash_token(NIGHTLY_TOKEN)}'
                       f' other:{hash_token(OTHER_TOKEN)}')  # fmt: skip
    yield procs
    stop_and_show_logs(procs, request)


def test_auto_approved_pipeline_gets_sealed_details_until_it_releases(jit, webhook, store, redis_url):
    """deploy-main files, is granted without anyone in Slack, reads its details (again after a lost answer),
    gives the access back, and from then on no read carries them."""
    webhook.details = {'password': SECRET_DETAIL}
    api, me = Api(jit.url, DEPLOY_TOKEN), Recipient()
    body = {'resource': 'demo-app', 'role': 'deploy', 'duration': '5m', 'reason': 'release 1.4.2',
            'public_key': me.public_key}  # fmt: skip
    status, filed, headers = api.call('POST', '/api/v1/requests', body)
    assert status == 201, filed
    request_id = filed['id']
    assert headers['Location'] == f'/api/v1/requests/{request_id}'
    assert filed['requester'] == 'pipeline:deploy-main' and filed['rule'] == 'deploy-from-ci'
    wait_until(lambda: api.status(request_id) == 'active' or None, timeout=15, what='the grant')
    grant = [c for c in webhook.grants_for(request_id) if c.ok]
    assert len(grant) == 1 and grant[0].body['user'] == {'slack_id': None, 'email': None, 'pipeline': 'deploy-main'}
    # `active` was read above; a pipeline whose answer was lost reads again and still gets the details.
    first, again = (api.call('GET', f'/api/v1/requests/{request_id}')[1] for _ in range(2))
    assert first['details'] is not None and again['details'] is not None
    assert me.open(first['details'], request_id=request_id) == me.open(again['details'], request_id=request_id)
    assert me.open(again['details'], request_id=request_id) == {'password': SECRET_DETAIL}
    status, released, _ = api.call('POST', f'/api/v1/requests/{request_id}/release')
    assert status == 202, released
    # Given back: no read carries them, neither while the revoke runs nor after, and Redis holds them no more.
    assert api.call('GET', f'/api/v1/requests/{request_id}')[1]['details'] is None
    assert store.sealed_details(request_id) is None
    wait_until(lambda: store.get(request_id).status is S.REVOKED, timeout=10, what='the revoke')
    assert api.call('GET', f'/api/v1/requests/{request_id}')[1]['details'] is None
    events = [e['event'] for e in store.audit_events() if (e.get('request') or {}).get('id') == request_id]
    assert events[:3] == ['request.created', 'request.approved', 'grant.started'] and events[-1] == 'grant.revoked'


def test_details_box_opens_only_with_the_pipelines_key(jit, webhook, store, redis_url):
    webhook.details = {'password': SECRET_DETAIL}
    api, me = Api(jit.url, DEPLOY_TOKEN), Recipient()
    status, filed, _ = api.call('POST', '/api/v1/requests', {
        'resource': 'demo-app', 'role': 'deploy', 'duration': 300, 'public_key': me.public_key})  # fmt: skip
    assert status == 201, filed
    request_id = filed['id']
    wait_until(lambda: store.get(request_id).status is S.ACTIVE, timeout=15, what='the grant')
    head = urllib.request.Request(f'{jit.url}/api/v1/requests/{request_id}', method='HEAD',
                                  headers={'Authorization': f'Bearer {DEPLOY_TOKEN}'})  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(head, timeout=10)
    assert refused.value.code == 405  # the API has no HEAD
    status, shown, _ = api.call('GET', f'/api/v1/requests/{request_id}')
    assert status == 200 and shown['status'] == 'active' and shown['expires_at'].endswith('Z')
    assert me.open(shown['details'], request_id=request_id) == {'password': SECRET_DETAIL}
    with pytest.raises(SealedBoxError):
        Recipient().open(shown['details'], request_id=request_id)  # another key does not open it
    # The secret never reached Redis in the clear, nor a log line.
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        dump = client.dump(key) or b''
        assert SECRET_DETAIL.encode() not in dump, (key, kind)
    assert SECRET_DETAIL not in jit.dump_logs()

    status, released, _ = api.call('POST', f'/api/v1/requests/{request_id}/release')
    assert status == 202 and released['ending'] is True
    wait_until(lambda: store.get(request_id).status is S.REVOKED, timeout=10, what='the revoke')
    assert webhook.revokes_for(request_id)
    status, again, _ = api.call('POST', f'/api/v1/requests/{request_id}/release')
    assert status == 200 and again['status'] == 'revoked' and again['final'] and again['ending'] is False


def test_pipeline_request_approved_in_slack_when_its_context_matches(jit, slack, webhook, store):
    """nightly asks on a merge to production: a lead approves in Slack, seeing which pipeline asks and why."""
    api = Api(jit.url, NIGHTLY_TOKEN)
    wrong_branch = {'event': 'pr_merge', 'branch': 'dev'}
    status, refused, _ = api.call('POST', '/api/v1/requests', {
        'resource': 'demo-app', 'role': 'read', 'reason': 'smoke test', 'context': wrong_branch})  # fmt: skip
    assert status == 403 and 'Not filed' in refused['error'], refused
    assert not store.for_user('pipeline:nightly')  # a refusal stores nothing
    status, filed, _ = api.call('POST', '/api/v1/requests', {
        'resource': 'demo-app', 'role': 'read', 'duration': '10m', 'reason': 'smoke test after merge',
        'context': {'event': 'pr_merge', 'branch': 'production'}})  # fmt: skip
    assert status == 201 and filed['status'] == 'pending' and filed['rule'] == 'nightly-read-on-merge', filed
    request_id = filed['id']
    copy = approval_copy(slack, SAM, request_id)
    assert 'pipeline:nightly' in copy.content and 'smoke test after merge' in copy.content
    assert slack.driver.click(SAM, copy, 'jit.approve', request_id).status == 200
    wait_until(lambda: store.get(request_id).status is S.ACTIVE, timeout=15, what='the grant')
    status, shown, _ = api.call('GET', f'/api/v1/requests/{request_id}')
    assert shown['status'] == 'active' and shown['approvals'][0]['by'] == 'sam@example.com'
    assert shown['details'] is None  # the target returned none, and the pipeline sent no key


def test_a_pipeline_sees_only_its_own_requests_and_cancels_a_pending_one(jit, slack, store):
    nightly, other = Api(jit.url, NIGHTLY_TOKEN), Api(jit.url, OTHER_TOKEN)
    status, filed, _ = nightly.call('POST', '/api/v1/requests', {
        'resource': 'demo-app', 'role': 'read', 'context': {'event': 'pr_merge', 'branch': 'production'}})  # fmt: skip
    assert status == 201, filed
    request_id = filed['id']
    copy = approval_copy(slack, SAM, request_id)
    assert other.call('GET', f'/api/v1/requests/{request_id}')[0] == 404
    assert other.call('POST', f'/api/v1/requests/{request_id}/release')[0] == 404
    assert store.get(request_id).status is S.PENDING
    status, cancelled, _ = nightly.call('POST', f'/api/v1/requests/{request_id}/release')
    assert status == 200 and cancelled['status'] == 'cancelled' and cancelled['final'], cancelled
    # The approver's copy loses its buttons: nothing is left to decide.
    wait_until(lambda: not {'jit.approve', 'jit.deny'} & set(slack.workspace.message(copy.channel, copy.ts).action_ids),
               timeout=10, what="the approval copy's buttons to go")  # fmt: skip
    assert nightly.call('POST', f'/api/v1/requests/{request_id}/release')[1]['status'] == 'cancelled'


def test_bad_tokens_and_bad_bodies_are_refused_and_change_nothing(jit, store, redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    before = {k: client.dump(k) for k in client.scan_iter(count=1000) if not k.startswith(b'rq:')}
    body = {'resource': 'demo-app', 'role': 'deploy'}
    near = DEPLOY_TOKEN[:-1] + ('A' if DEPLOY_TOKEN[-1] != 'A' else 'B')  # one character off
    for headers in ({}, {'Authorization': 'Basic ZGVwbG95Om1haW4='}, {'Authorization': 'Bearer jit_nope'},
                    {'Authorization': f'Bearer {near}'}, {'Authorization': f'bearer{DEPLOY_TOKEN}'}):  # fmt: skip
        status, answer, sent = Api(jit.url, None).call('POST', '/api/v1/requests', body, headers=headers)
        assert status == 401 and answer['error'] and 'Bearer' in sent['WWW-Authenticate'], (headers, answer)
    assert Api(jit.url, None).call('GET', '/api/v1/requests/r-abcdefgh')[0] == 401
    after = {k: client.dump(k) for k in client.scan_iter(count=1000) if not k.startswith(b'rq:')}
    assert after == before
    assert DEPLOY_TOKEN not in jit.dump_logs()

    api = Api(jit.url, DEPLOY_TOKEN)
    cases = [
        ({'role': 'deploy'}, 'resource'),
        ({'resource': 'demo-app', 'duration': 'forever'}, 'duration'),
        ({'resource': 'demo-app', 'duration': True}, 'duration'),
        ({'resource': 'demo-app', 'duraton': '5m'}, 'duraton'),
        ({'resource': 'demo-app', 'context': ['pr_merge']}, 'context'),
        ({'resource': 'demo-app', 'public_key': 'not-a-key'}, 'public_key'),
        ({'resource': 'x' * 500}, 'resource'),
    ]
    for bad, field in cases:
        status, answer, _ = api.call('POST', '/api/v1/requests', bad)
        assert status == 400 and field in answer['errors'], (bad, answer)
    assert api.call('POST', '/api/v1/requests', raw=b'{"resource": "demo-')[0] == 400
    assert api.call('POST', '/api/v1/requests', raw=b'[]')[0] == 400
    assert api.call('POST', '/api/v1/requests', raw=b'[' * 5000 + b']' * 5000)[0] == 400  # was a 500
    lone_surrogate = b'{"resource": "demo-app", "role": "deploy", "reason": "\\ud800"}'
    assert api.call('POST', '/api/v1/requests', raw=lone_surrogate)[0] == 400  # was a 500
    assert api.call('POST', '/api/v1/requests', body, headers={'Content-Type': 'text/plain'})[0] == 415
    assert api.call('POST', '/api/v1/requests', raw=b'{"reason": "' + b'a' * 20000 + b'"}')[0] == 413
    assert api.call('GET', '/api/v1/requests/../../slack/events')[0] == 404
    assert api.call('DELETE', '/api/v1/requests/r-abcdefgh')[0] == 405
    status, denied, _ = api.call('POST', '/api/v1/requests', {'resource': 'demo-app', 'role': 'read'})
    assert status == 403 and denied['error'].startswith('Not filed'), denied
    assert not store.for_user('pipeline:deploy-main')


def test_limits_answer_429_with_retry_after(jit, store):
    """JIT_MAX_OPEN_REQUESTS=2 here: a third waiting request from the same pipeline is refused."""
    api = Api(jit.url, NIGHTLY_TOKEN)
    body = {'resource': 'demo-app', 'role': 'read', 'context': {'event': 'pr_merge', 'branch': 'production'}}
    assert [api.call('POST', '/api/v1/requests', body)[0] for _ in range(2)] == [201, 201]
    status, answer, headers = api.call('POST', '/api/v1/requests', body)
    assert status == 429 and 'waiting for a decision' in answer['error'] and int(headers['Retry-After']) > 0
    assert len(store.for_user('pipeline:nightly')) == 2


def test_idempotency_key_files_once_however_often_and_however_concurrently_it_is_sent(jit, store):
    """A retry after a lost answer gets the request the first POST filed (200, Idempotent-Replayed); the same
    key with another body is 422; eight retries at the same instant file one request; keys are per pipeline."""
    deploy, nightly = Api(jit.url, DEPLOY_TOKEN), Api(jit.url, NIGHTLY_TOKEN)
    body = {'resource': 'demo-app', 'role': 'deploy', 'duration': '5m', 'reason': 'release 1.4.3'}
    key = {'Idempotency-Key': 'c0ffee-1.4.3:retry_safe'}
    status, filed, headers = deploy.call('POST', '/api/v1/requests', body, headers=key)
    assert status == 201 and 'Idempotent-Replayed' not in headers, filed
    status, again, headers = deploy.call('POST', '/api/v1/requests', body, headers=key)
    assert status == 200 and again['id'] == filed['id'] and headers['Idempotent-Replayed'] == 'true', again
    assert headers['Location'] == f'/api/v1/requests/{filed["id"]}'
    status, refused, _ = deploy.call('POST', '/api/v1/requests', {**body, 'duration': '10m'}, headers=key)
    assert status == 422 and 'different body' in refused['error'], refused
    # Another pipeline's key of the same name is its own.
    merge = {'resource': 'demo-app', 'role': 'read', 'context': {'event': 'pr_merge', 'branch': 'production'}}
    status, theirs, _ = nightly.call('POST', '/api/v1/requests', merge, headers=key)
    assert status == 201 and theirs['id'] != filed['id'], theirs
    # A refusal files nothing and leaves the key free for the call that is right.
    other = {'Idempotency-Key': 'after-a-refusal'}
    assert deploy.call('POST', '/api/v1/requests', {**body, 'role': 'read'}, headers=other)[0] == 403
    assert deploy.call('POST', '/api/v1/requests', body, headers=other)[0] == 201
    # Keys are bounded: too long, or with characters outside the set, or two of them.
    for bad in ('x' * 129, 'no spaces', 'ümlaut'):
        status, problem, _ = deploy.call('POST', '/api/v1/requests', body, headers={'Idempotency-Key': bad})
        assert status == 400 and 'Idempotency-Key' in problem['errors'], (bad, problem)
    before = {r.id for r in store.for_user('pipeline:deploy-main')}

    def retry(_: int) -> tuple[int, str]:
        concurrent = {'Idempotency-Key': 'at-the-same-instant'}
        while True:
            status, answer, _ = deploy.call('POST', '/api/v1/requests', body, headers=concurrent)
            if status != 409:
                return status, answer['id']
            time.sleep(0.2)

    gate = threading.Barrier(8)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: (gate.wait(), retry(i))[1], range(8)))
    assert sorted(status for status, _ in answers) == [200] * 7 + [201], answers
    assert len({request_id for _, request_id in answers}) == 1
    new = {r.id for r in store.for_user('pipeline:deploy-main')} - before
    assert new == {answers[0][1]}


def test_openapi_document_is_served_without_a_token(jit):
    status, doc, _ = Api(jit.url, None).call('GET', '/api/v1/openapi.json')
    assert status == 200 and doc['openapi'].startswith('3.1') and '/requests/{id}/release' in doc['paths']


def _snapshot(client: Any) -> dict[bytes, bytes]:
    """What jit keeps in Redis, but RQ's own keys, the short leases the sweeper takes on its rounds, and the notify
    follower's position (it moves as events recorded before are shown in Slack)."""
    return {k: client.dump(k) for k in client.scan_iter(count=1000)
            if not k.startswith((b'rq:', b'jit:lease:')) and k != b'jit:notify:cursor'}  # fmt: skip


def test_low_order_public_keys_are_refused_at_post_and_nothing_is_filed(jit, webhook, store, redis_url):
    """deploy-main is auto-approved: accepted, such a key would be granted at the target and then fail to seal."""
    import redis

    from tests.test_api_tokens_and_sealing import LOW_ORDER, NON_CANONICAL

    client = redis.Redis.from_url(redis_url)
    webhook.details = {'password': SECRET_DETAIL}
    api = Api(jit.url, DEPLOY_TOKEN)
    before = _snapshot(client)
    for name, key in {**LOW_ORDER, **NON_CANONICAL}.items():
        status, answer, _ = api.call('POST', '/api/v1/requests', {
            'resource': 'demo-app', 'role': 'deploy', 'duration': '5m', 'public_key': key})  # fmt: skip
        assert status == 422 and set(answer['errors']) == {'public_key'}, (name, answer)
        assert answer['error'].startswith('unusable request: public_key')
        if key == 'A' * 43:
            assert 'low-order' in answer['errors']['public_key'], answer
    assert _snapshot(client) == before
    assert not store.for_user('pipeline:deploy-main')
    assert not [call for call in webhook.calls if call.action in ('grant', 'revoke')]


def test_details_that_cannot_be_sealed_fail_the_grant_and_the_access_is_revoked(jit, slack, webhook, store,
                                                                                 redis_url):  # fmt: skip
    """A key that got past the API (written straight into Redis here) cannot seal the details the target handed
    out: the request ends `failed` with why, and the target sees the access it granted revoked."""
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    webhook.details = {'password': SECRET_DETAIL}
    api = Api(jit.url, NIGHTLY_TOKEN)
    status, filed, _ = api.call('POST', '/api/v1/requests', {
        'resource': 'demo-app', 'role': 'read', 'duration': '10m', 'reason': 'smoke test',
        'context': {'event': 'pr_merge', 'branch': 'production'}, 'public_key': Recipient().public_key})  # fmt: skip
    assert status == 201 and filed['status'] == 'pending', filed
    request_id = filed['id']
    key = f'jit:req:{request_id}'
    stored = json.loads(client.get(key))
    stored['recipient_key'] = 'A' * 43
    client.set(key, json.dumps(stored))
    copy = approval_copy(slack, SAM, request_id)
    assert slack.driver.click(SAM, copy, 'jit.approve', request_id).status == 200
    wait_until(lambda: store.get(request_id).status is S.FAILED or None, timeout=15, what='the grant to fail')
    assert [c.ok for c in webhook.grants_for(request_id)] == [True]  # granted once; not retried into the same hole
    wait_until(lambda: [c for c in webhook.revokes_for(request_id) if c.ok] or None, timeout=15, what='the revoke')
    assert request_id not in webhook.active
    wait_until(lambda: store.due_at(request_id) is None or None, timeout=10, what='the clean-up to finish')
    status, shown, _ = api.call('GET', f'/api/v1/requests/{request_id}')
    assert status == 200 and shown['status'] == 'failed' and shown['final'] and shown['details'] is None, shown
    assert 'could not be handed over' in shown['error'] and 'revoked' in shown['error'], shown
    assert client.get(f'jit:details:{request_id}') is None
    assert SECRET_DETAIL not in jit.dump_logs()
