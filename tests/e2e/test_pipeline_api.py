"""The pipeline API end to end: real ``jit serve`` and ``jit worker``, Redis, the local Slack, a webhook.

A pipeline files over HTTP with its bearer token; the policy decides (auto-approve, or approvers in
Slack); the worker grants through the webhook; the pipeline reads its sealed details once and releases.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from bot.adapters.sealed_box import Recipient
from bot.api.tokens import hash_token, new_token
from bot.core.model import RequestStatus
from tests.e2e.conftest import POLICY, SIGNING_SECRET, WEBHOOK_SECRET
from tests.support.processes import launch_jit, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.redis]
S = RequestStatus
SAM, ALEX = 'U0SAM', 'U0ALEX'
DEPLOY_TOKEN, NIGHTLY_TOKEN, OTHER_TOKEN = new_token(), new_token(), new_token()
SECRET_DETAIL = 'pw-' + 'x7Q2' * 6  # what the target hands out; must reach the pipeline and nowhere else

PIPELINE_RULES = """\
  - name: deploy-from-ci
    resources: [demo-app]
    roles: [deploy]
    requesters: [pipeline:deploy-main]
    trigger: pipeline
    auto_approve: true
    timeout: 20m
  - name: nightly-read-on-merge
    resources: [demo-app]
    roles: [read]
    requesters: [pipeline:nightly]
    trigger: {pipeline: pr_merge, branch: production}
    approvers: [group:leads]
    timeout: 1h
    pending_timeout: 1h
"""


class Api:
    """A bare HTTP client, as a pipeline without jit installed would have (urllib, JSON)."""

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
                return answer.status, json.loads(answer.read() or b'{}'), dict(answer.headers)
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b'{}'), dict(err.headers)

    def status(self, request_id: str) -> str:
        return str(self.call('GET', f'/api/v1/requests/{request_id}')[1].get('status'))


@pytest.fixture(name='jit')
def _jit(tmp_path, redis_url, slack, webhook, request):
    procs = launch_jit(tmp_path, slack=slack, signing_secret=SIGNING_SECRET, redis_url=redis_url,
                       policy=POLICY + PIPELINE_RULES, JIT_AUDIT_CHANNEL='C0AUDIT', DEMO_WEBHOOK_URL=webhook.url,
                       DEMO_WEBHOOK_SECRET=WEBHOOK_SECRET, JIT_MAX_OPEN_REQUESTS='2',
                       JIT_API_TOKENS=f'deploy-main:{hash_token(DEPLOY_TOKEN)}, nightly:{hash_token(NIGHTLY_TOKEN)}'
                       f' other:{hash_token(OTHER_TOKEN)}')  # fmt: skip
    yield procs
    procs.stop()
    if getattr(request.node, 'rep_call', None) is not None and request.node.rep_call.failed:
        print(procs.dump_logs())


def test_auto_approved_pipeline_gets_sealed_details_once_and_releases(jit, webhook, store, redis_url):
    """deploy-main files, is granted without anyone in Slack, reads its details once, gives the access back."""
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
    # `active` was read above, and that first read took the details: a second reader gets none.
    assert api.call('GET', f'/api/v1/requests/{request_id}')[1]['details'] is None
    status, released, _ = api.call('POST', f'/api/v1/requests/{request_id}/release')
    assert status == 202, released
    wait_until(lambda: store.get(request_id).status is S.REVOKED, timeout=10, what='the revoke')
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
    status, shown, _ = api.call('GET', f'/api/v1/requests/{request_id}')
    assert status == 200 and shown['status'] == 'active' and shown['expires_at'].endswith('Z')
    assert me.open(shown['details'], request_id=request_id) == {'password': SECRET_DETAIL}
    assert Api(jit.url, DEPLOY_TOKEN).call('GET', f'/api/v1/requests/{request_id}')[1]['details'] is None
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
