"""A grant is revoked with what it was granted with, whatever the policy says by then.

The provider here keeps its objects per target (``settings['url']``), as a webhook receiver, a PostgreSQL
cluster under a role prefix or an AWS account would: a revoke sent with the current policy's settings would
reach another target, which answers "already gone" while the access lives on. Real Redis, real use cases.
"""

from __future__ import annotations

import dataclasses

import pytest
import redis

from bot.adapters.redis_store import RedisStore
from bot.core.model import RequestStatus
from bot.core.policy_loader import build_policy
from bot.deps import SystemClock
from bot.usecases.decide_request import ApproveRequest
from bot.usecases.end_access import EndAccess
from bot.usecases.grant_access import GrantAccess
from bot.usecases.revoke_access import RevokeAccess
from bot.usecases.submit_request import SubmitRequest
from tests.core.policy_fixtures import ALEX, SAM
from tests.support.fakes import IgnoringQueue
from tests.support.redis_server import own_redis_url
from workers.reconciler import Reconciler

pytestmark = pytest.mark.redis
S = RequestStatus
URL = own_redis_url(18)
POLICY = """
groups:
  devops: [alex@example.com]
  leads: [sam@example.com]
resources:
  app:
    provider: webhook
    settings: {{url: "{url}", secret: {token}}}
    roles: {{read: {{grant: {grant}}}}}
{more}
requests:
  - name: app-read
    requesters: [group:devops]
    approvers: [group:leads]
    timeout: 2h
"""


class Targets:
    """Objects per target URL; records the settings and params of every call."""

    secret_settings = frozenset({'secret'})

    def __init__(self) -> None:
        self.live: dict[str, dict[str, str]] = {}
        self.calls: list[tuple[str, str, dict, dict]] = []

    def grant(self, request, *, settings, params):
        self.calls.append(('grant', request.id, dict(settings), dict(params)))
        self.live.setdefault(settings['url'], {})[request.id] = request.role
        return {}

    def revoke(self, request, *, settings, params):
        self.calls.append(('revoke', request.id, dict(settings), dict(params)))
        self.live.get(settings['url'], {}).pop(request.id, None)

    def list_live(self, resource, *, settings):
        return list(self.live.get(settings['url'], {}).items())


class Jit:
    def __init__(self) -> None:
        self.client = redis.Redis.from_url(URL, decode_responses=True)
        self.client.flushdb()
        clock = SystemClock()
        self.store = RedisStore(self.client, clock=clock)
        self.targets = Targets()
        self.set_policy()
        kw = {'store': self.store, 'queue': IgnoringQueue(), 'policy': lambda: self.policy, 'clock': clock}
        self.submit, self.approve, self.end = SubmitRequest(**kw), ApproveRequest(**kw), EndAccess(**kw)
        self.grant = GrantAccess(**kw, provider=lambda name: self.targets, on_details=lambda r, d: None)
        self.revoke = RevokeAccess(**kw, provider=lambda name: self.targets, sleep=lambda s: None)
        self.reconciler = Reconciler(**kw, provider=lambda name: self.targets)

    def set_policy(self, *, url='http://a.example/jit', token='env:APP_TOKEN', grant='reader',
                   more='', resources=True):  # fmt: skip
        text = POLICY.format(url=url, token=token, grant=grant, more=more)
        if not resources:
            text = text.replace('resources:\n  app:', 'resources:\n  other:').replace(
                '    roles: {read:', '    roles: {x:'
            )
        self.policy = build_policy({'p.yaml': text})

    def active(self) -> str:
        request = self.submit.execute(requester=ALEX, resource='app', role='read', duration=600, reason='x')
        self.approve.execute(request.id, SAM)
        assert self.grant.execute(request.id) == 'granted'
        return request.id

    def release(self, request_id: str) -> str:
        self.end.release(request_id, ALEX)
        return self.revoke.execute(request_id)


@pytest.fixture(name='jit')
def _jit():
    yield Jit()
    redis.Redis.from_url(URL).flushdb()


def test_a_changed_target_does_not_take_the_revoke_elsewhere(jit):
    """The policy moves `app` to another URL and role parameters: the release reaches the grant's own target, with
    the settings and role parameters it was granted with."""
    request_id = jit.active()
    jit.set_policy(url='http://b.example/jit', grant='writer')
    assert jit.release(request_id) == 'revoked'
    revoke = [c for c in jit.targets.calls if c[0] == 'revoke'][-1]
    assert revoke[2] == {'url': 'http://a.example/jit', 'secret': 'env:APP_TOKEN'}
    assert revoke[3] == {'grant': 'reader'}
    assert jit.targets.live['http://a.example/jit'] == {}


def test_a_resource_removed_from_the_policy_is_still_revoked(jit):
    """Before, a revoke of a resource the policy no longer had failed forever; the record still knows where."""
    request_id = jit.active()
    jit.set_policy(resources=False)
    assert jit.release(request_id) == 'revoked'
    assert jit.store.get(request_id).status is S.REVOKED


def test_the_record_holds_env_references_and_never_an_inline_secret(jit):
    """`env:` stays a reference; a secret written inline is recorded as its SHA-256 only, and still revokes."""
    jit.set_policy(token='inline-token-value')
    request_id = jit.active()
    raw = jit.client.get(f'jit:req:{request_id}')
    assert 'inline-token-value' not in raw
    assert jit.store.get(request_id).granted_with['settings']['secret'].startswith('inline-sha256:')
    assert jit.release(request_id) == 'revoked'
    assert [c for c in jit.targets.calls if c[0] == 'revoke'][-1][2]['secret'] == 'inline-token-value'


def test_a_changed_inline_secret_fails_the_revoke_loudly_instead_of_guessing(jit):
    """The inline secret changed since the grant: the revoke fails (retried and alerted), it is not sent with
    the new secret."""
    jit.set_policy(token='inline-one')
    request_id = jit.active()
    jit.set_policy(token='inline-two')
    assert jit.release(request_id) == 'failed, will retry'
    assert [c for c in jit.targets.calls if c[0] == 'revoke'] == []


def test_the_reconciler_looks_at_the_targets_live_grants_were_made_at(jit):
    """After the move, an orphan at the old target (a grant jit lost) is still found and revoked there."""
    request_id = jit.active()
    jit.targets.live['http://a.example/jit']['r-orphan1'] = 'read'
    jit.set_policy(url='http://b.example/jit')
    assert jit.reconciler.run_once() == 1
    assert jit.targets.live['http://a.example/jit'] == {request_id: 'read'}


def test_a_grant_revoked_while_the_reconciler_lists_is_not_revoked_again(jit, monkeypatch):
    """The list is taken, then a revoker ends one of its grants on time, then the reconciler reads its record:
    revoked. It was taken for an orphan and revoked a second time, with a false `grant.revoked` event; the
    provider's second look shows it gone. A real orphan in the same list is still revoked."""
    ending, request_id = jit.active(), jit.active()
    jit.targets.live['http://a.example/jit']['r-orphan1'] = 'read'
    listed = jit.targets.list_live
    looks = []

    def list_live(resource, *, settings):
        live = listed(resource, settings=settings)
        looks.append(live)
        if len(looks) == 1:
            assert jit.release(ending) == 'revoked'  # a revoker, between the list and the records
        return live

    monkeypatch.setattr(jit.targets, 'list_live', list_live)
    assert jit.reconciler.run_once() == 1
    assert len(looks) == 2
    assert [c[1] for c in jit.targets.calls if c[0] == 'revoke'] == [ending, 'r-orphan1']
    assert jit.targets.live['http://a.example/jit'] == {request_id: 'read'}
    events = [e for e in jit.store.audit_events() if e['event'] == 'grant.revoked']
    assert [(e['request']['id'], e['actor']) for e in events] == [(ending, ALEX.slack_id), ('r-orphan1', 'reconciler')]


def test_an_inline_url_is_recorded_as_written_and_one_with_a_credential_only_as_its_hash(jit):
    """The webhook declares `url` secret (it may be env:): written inline it is reviewed configuration, recorded
    as written so the revoke reaches it after a change; with a password in it, only its hash is recorded."""
    jit.targets.secret_settings = frozenset({'url', 'secret'})
    first = jit.active()
    assert jit.store.get(first).granted_with['settings']['url'] == 'http://a.example/jit'
    jit.set_policy(url='http://b.example/jit')
    assert jit.release(first) == 'revoked'
    assert [c for c in jit.targets.calls if c[0] == 'revoke'][-1][2]['url'] == 'http://a.example/jit'
    jit.set_policy(url='https://jit:hunter2@c.example/jit')
    second = jit.active()
    assert 'hunter2' not in jit.client.get(f'jit:req:{second}')
    assert jit.release(second) == 'revoked'


#: An int that json.dumps cannot write (Python's int-to-str limit). The loader refuses it in a policy file; a
#: policy built another way (a provider plugin's settings may hold anything) must still not stop anything.
UNWRITABLE = int('f' * 4200, 16)


def with_settings(policy, resource, **settings):
    """``policy`` with ``settings`` added to ``resource``'s, bypassing the loader."""
    res = policy.resources[resource]
    resources = {**policy.resources, resource: dataclasses.replace(res, settings={**res.settings, **settings})}
    return dataclasses.replace(policy, resources=resources, _refs={}, _by_resource={}, _allowed={})


def test_a_setting_json_cannot_write_stops_neither_the_reconciler_nor_the_other_resources(jit):
    """One resource's unwritable setting made `_targets` raise: the reconciler, the last layer of "never lose a
    revoke", stopped for every resource. Now that resource is reported and skipped, and the others reconciled."""
    jit.set_policy(more='  big:\n    provider: webhook\n    settings: {url: "http://big.example/jit"}\n'
                        '    roles: [read]\n')  # fmt: skip
    jit.policy = with_settings(jit.policy, 'big', retries=UNWRITABLE)
    jit.targets.live['http://a.example/jit'] = {'r-orphan1': 'read'}
    assert jit.reconciler.run_once() == 1
    assert jit.targets.live['http://a.example/jit'] == {}


def test_a_grant_whose_settings_cannot_be_recorded_fails_cleanly_before_the_provider_is_called(jit):
    """`recorded_target` raised ValueError out of the grant job (retried until the window ran out); now the
    request fails at once, saying which setting, and nothing is granted anywhere."""
    jit.policy = with_settings(jit.policy, 'app', retries=UNWRITABLE)
    request = jit.submit.execute(requester=ALEX, resource='app', role='read', duration=600, reason='x')
    jit.approve.execute(request.id, SAM)
    assert jit.grant.execute(request.id) == 'failed'
    failed = jit.store.get(request.id)
    assert failed.status is S.FAILED and '`retries`' in failed.error, failed.error
    assert [c for c in jit.targets.calls if c[0] == 'grant'] == []


def test_a_provider_failing_to_list_one_resource_in_its_own_way_stops_only_that_resource(jit, monkeypatch):
    """Only a ProviderError was caught around `list_live`: a provider's own bug on one resource's settings
    (a ValueError) ended the pass for every resource after it."""
    jit.set_policy(more='  aaa:\n    provider: webhook\n    settings: {url: "http://aaa.example/jit"}\n'
                        '    roles: [read]\n')  # fmt: skip
    jit.targets.live['http://aaa.example/jit'] = {'r-orphan1': 'read'}
    listed = jit.targets.list_live

    def list_live(resource, *, settings):
        if resource == 'app':
            raise ValueError('this provider cannot read these settings')
        return listed(resource, settings=settings)

    monkeypatch.setattr(jit.targets, 'list_live', list_live)
    assert [name for name, _ in jit.reconciler._targets(jit.policy)] == ['app', 'aaa']  # the failing one first
    assert jit.reconciler.run_once() == 1
    assert jit.targets.live['http://aaa.example/jit'] == {}
