"""Overlapping grants of the same access to the same person: the access stays until the last one ends.

Two requests by alex for prod-db read, both active. Where each request is its own object at the target
(a webhook receiver keyed by request ID, a PostgreSQL role per request, an SSH certificate) nothing
special is needed. Where they land on one shared object - a group membership - revoking the first
must not remove it: jit revokes at the provider only when the last holder ends. Either store; a provider
that keeps a membership set, as an IAM group does.
"""

from __future__ import annotations

import threading
import time

import pytest

from bot.core.model import RequestStatus
from bot.core.policy_loader import build_policy
from bot.deps import SystemClock
from bot.usecases.decide_request import ApproveRequest
from bot.usecases.end_access import EndAccess
from bot.usecases.grant_access import GrantAccess
from bot.usecases.revoke_access import RevokeAccess
from bot.usecases.submit_request import SubmitRequest
from tests.core.policy_fixtures import ALEX, POLICY_YAML, SAM
from tests.support.fakes import IgnoringQueue
from tests.support.redis_server import own_redis_url
from tests.support.stores import new_store

S = RequestStatus
URL = own_redis_url(12)


class Group:
    """A group membership at the target: adding twice is one membership; removing once ends it."""

    def __init__(self, shared: bool, slow: float = 0.0) -> None:
        self.shared_grants = shared
        self.members: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        self.slow = slow

    def grant(self, request, *, settings, params):
        time.sleep(self.slow)
        self.members.add(request.requester.email)
        self.calls.append(('grant', request.id))
        return {}

    def revoke(self, request, *, settings, params):
        time.sleep(self.slow)
        self.members.discard(request.requester.email)
        self.calls.append(('revoke', request.id))


def _wire(group: Group, store_kind: str):
    clock = SystemClock()
    store = new_store(store_kind, clock, url=URL)
    policy = lambda: build_policy({'p.yaml': POLICY_YAML})  # noqa: E731
    kw = {'store': store, 'queue': IgnoringQueue(), 'policy': policy, 'clock': clock}
    submit, approve = SubmitRequest(**kw), ApproveRequest(**kw)
    grant = GrantAccess(**kw, provider=lambda name: group, on_details=lambda r, d: None)
    revoke = RevokeAccess(**kw, provider=lambda name: group, sleep=lambda s: None)
    end = EndAccess(**kw)

    def approved(reason: str = 'INC-1') -> str:
        request = submit.execute(requester=ALEX, resource='prod-db', role='read', duration=600, reason=reason)
        approve.execute(request.id, SAM)
        return request.id

    return store, grant, revoke, end, approved


@pytest.fixture(name='shared')
def _shared(store_kind):
    group = Group(shared=True)
    return group, *_wire(group, store_kind)


def _release(store, end, revoke, request_id):
    end.release(request_id, ALEX)
    return revoke.execute(request_id)


def test_releasing_one_of_two_overlapping_grants_keeps_the_access(shared):
    group, store, grant, revoke, end, approved = shared
    first, second = approved(), approved()
    assert grant.execute(first) == grant.execute(second) == 'granted'
    assert _release(store, end, revoke, first) == 'revoked'
    assert store.get(first).status is S.REVOKED
    assert ALEX.email in group.members, 'the second grant still holds the membership'
    assert ('revoke', first) not in group.calls
    event = [e for e in store.audit_events() if e['event'] == 'grant.revoked'][-1]
    assert event['detail']['kept_for'] == [second], 'the audit trail says why the access stayed'
    assert _release(store, end, revoke, second) == 'revoked'
    assert ALEX.email not in group.members and group.calls[-1] == ('revoke', second)


def test_a_re_request_while_active_outlives_the_first_grant(shared):
    group, store, grant, revoke, _, approved = shared
    first = approved()
    grant.execute(first)
    second = approved('INC-2')  # asked again before the first ended
    grant.execute(second)
    store.postpone_revoke(first, 0)  # the first expires: its revoke is due now
    assert revoke.execute(first) == 'revoked'
    assert ALEX.email in group.members
    assert store.holders(store.get(second)) == {second}


def test_per_request_objects_are_revoked_one_by_one(store_kind):
    """A provider without shared grants (the webhook's default) revokes each request's own object."""
    group = Group(shared=False)
    store, grant, revoke, end, approved = _wire(group, store_kind)
    first, second = approved(), approved()
    grant.execute(first)
    grant.execute(second)
    _release(store, end, revoke, first)
    assert ('revoke', first) in group.calls


def test_a_revoke_racing_an_overlapping_grant_never_cuts_it(store_kind):
    """The first grant's revoke and the second's grant at the same moment, 20 times: whichever runs first,
    the membership stands at the end while the second grant is active."""
    for _ in range(20):
        group = Group(shared=True, slow=0.02)
        store, grant, revoke, end, approved = _wire(group, store_kind)
        first = approved()
        grant.execute(first)
        second = approved('INC-2')
        end.release(first, ALEX)
        threads = [threading.Thread(target=revoke.execute, args=(first,)),
                   threading.Thread(target=grant.execute, args=(second,))]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if store.get(first).status is S.ACTIVE:  # lost the race for the lease: the sweeper's next round
            revoke.execute(first)
        assert store.get(first).status is S.REVOKED
        assert store.get(second).status is S.ACTIVE
        assert ALEX.email in group.members, group.calls
