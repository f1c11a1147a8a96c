"""``revoke_on_idle``: an unused grant ends early, through the same path as a release; one in use does not.

Either store, a clock the test moves, a provider that says when the grant was last in use (as PostgreSQL's
provider does from ``pg_stat_activity``). The postgres provider's own test shows ``last_used`` on a real
server; here the rule, the window and the bookkeeping are pinned down.
"""

from __future__ import annotations

import pytest

from bot.core.model import RequestStatus
from bot.core.policy_loader import build_policy
from bot.usecases.decide_request import ApproveRequest
from bot.usecases.grant_access import GrantAccess
from bot.usecases.revoke_access import RevokeAccess
from bot.usecases.revoke_idle import DEFAULT_IDLE_WINDOW, RevokeIdle
from bot.usecases.submit_request import SubmitRequest
from tests.core.policy_fixtures import ALEX, POLICY_YAML, SAM
from tests.support.fakes import MovableClock
from tests.support.redis_server import own_redis_url
from tests.support.stores import new_store

S = RequestStatus
URL = own_redis_url(12)


class Sessions:
    """A provider whose grants are in use while ``busy`` holds them (it can only see the present)."""

    def __init__(self, clock: MovableClock) -> None:
        self.clock, self.busy, self.revoked = clock, set(), []

    def grant(self, request, *, settings, params):
        return {}

    def revoke(self, request, *, settings, params):
        self.revoked.append(request.id)

    def last_used(self, request, *, settings, params):
        return self.clock.now() if request.id in self.busy else None


class Queue:
    def __init__(self) -> None:
        self.now: list[str] = []

    def enqueue_revoke_now(self, request_id):
        self.now.append(request_id)

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _jit(idle: str, store_kind: str):
    clock, queue = MovableClock(), Queue()
    provider = Sessions(clock)
    store = new_store(store_kind, clock, url=URL)
    yaml = POLICY_YAML.replace('    timeout: 2 hours\n', f'    timeout: 2 hours\n    revoke_on_idle: {idle}\n', 1)
    assert yaml != POLICY_YAML
    policy = lambda: build_policy({'p.yaml': yaml})  # noqa: E731
    kw = {'store': store, 'queue': queue, 'policy': policy, 'clock': clock}
    request = SubmitRequest(**kw).execute(requester=ALEX, resource='prod-db', role='read', duration=3600,
                                          reason='INC-1')  # fmt: skip
    ApproveRequest(**kw).execute(request.id, SAM)
    GrantAccess(**kw, provider=lambda n: provider, on_details=lambda r, d: None).execute(request.id)
    idle_check = RevokeIdle(**kw, provider=lambda n: provider)
    revoke = RevokeAccess(**kw, provider=lambda n: provider, sleep=lambda s: None)
    return store, clock, queue, provider, idle_check, revoke, request.id


@pytest.fixture(name='jit')
def _fixture(store_kind):
    return _jit('15m', store_kind)


def test_a_grant_in_use_is_kept_and_an_unused_one_ends_after_the_window(jit):
    store, clock, queue, provider, idle_check, revoke, request_id = jit
    assert store.get(request_id).status is S.ACTIVE
    provider.busy.add(request_id)
    clock.t += 10 * 60
    assert idle_check.check_once() == []  # seen in use now
    provider.busy.clear()
    clock.t += 14 * 60
    assert idle_check.check_once() == [], 'idle 14 min, counted from the last sighting, not the grant'
    clock.t += 2 * 60
    assert idle_check.check_once() == [request_id]
    assert queue.now == [request_id]
    assert revoke.execute(request_id) == 'revoked'
    assert provider.revoked == [request_id]
    event = [e for e in store.audit_events() if e['event'] == 'grant.revoked'][-1]
    assert (event['actor'], event['detail']['why']) == ('jit', 'idle for 15m')


def test_never_used_counts_from_the_grant(jit):
    store, clock, queue, _, idle_check, _, request_id = jit
    clock.t += 14 * 60
    assert idle_check.check_once() == []
    clock.t += 61
    assert idle_check.check_once() == [request_id]
    assert idle_check.check_once() == [request_id] and queue.now == [request_id] * 2, 'idempotent: same end'
    assert store.due_at(request_id) <= clock.now()


def test_true_uses_the_provider_default_window(store_kind):
    _, clock, _, _, idle_check, _, request_id = _jit('true', store_kind)
    clock.t += DEFAULT_IDLE_WINDOW - 5
    assert idle_check.check_once() == []
    clock.t += 10
    assert idle_check.check_once() == [request_id]
