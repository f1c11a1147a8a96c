"""One contract, two stores: what the use cases may rely on, checked against Redis and against memory.

Every test here runs twice: on :class:`~bot.adapters.redis_store.RedisStore` over a real Redis (what runs in
production) and on :class:`~tests.support.memory_store.MemoryStore` (what the use-case tests use). A
difference between them fails here, not as a use-case test that passes in memory and means nothing.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from dataclasses import replace

import pytest
import redis

from bot.adapters import redis_store
from bot.adapters.redis_store import RedisStore
from bot.audit.chain import GENESIS, verify_chain
from bot.audit.records import Entry
from bot.core import transitions as t
from bot.core.errors import InvalidTransition, RequestNotFound
from bot.core.model import GENESIS_HASH, AccessRequest, AuditEvent, AuditName, Principal, RequestStatus, chain_hash
from bot.core.ports import RequestStore
from tests.core.policy_fixtures import ALEX, DANA, PIPE, SAM, policy
from tests.support import memory_store
from tests.support.fakes import MovableClock
from tests.support.memory_store import MemoryStore
from tests.support.redis_server import own_redis_url

S = RequestStatus
URL = own_redis_url(19)
_ids = itertools.count(1)


@pytest.fixture(name='clock')
def _clock() -> MovableClock:
    return MovableClock()


@pytest.fixture(name='store', params=['redis', 'memory'])
def _store(request: pytest.FixtureRequest, clock: MovableClock) -> RequestStore:
    if request.param == 'memory':
        return MemoryStore(clock=clock)
    if request.node.get_closest_marker('redis') is None:
        request.node.add_marker(pytest.mark.redis)
    client = redis.Redis.from_url(URL, decode_responses=True)
    prefix = f'contract-{uuid.uuid4().hex[:8]}:'  # a key space of its own: no flush, no other test's keys
    request.addfinalizer(lambda: [client.delete(*keys) for keys in [client.keys(prefix + '*')] if keys])
    return RedisStore(client, clock=clock, prefix=prefix)


def make(requester: Principal = ALEX, *, created_at: float = 0.0, **kw: object) -> AccessRequest:
    return AccessRequest(id=f'r-{next(_ids):05d}', requester=requester, resource='prod-db', role='read',
                         duration=600, reason='INC-1', rule='prod-read', policy_version='v', created_at=created_at,
                         **kw)  # fmt: skip


def filed(store: RequestStore, clock: MovableClock, requester: Principal = ALEX, **kw: object) -> AccessRequest:
    request, event = t.created(make(requester, created_at=clock.now(), **kw))
    store.create(request, event)
    return request


def approved(store: RequestStore, clock: MovableClock, requester: Principal = ALEX) -> AccessRequest:
    request, p = filed(store, clock, requester), policy()
    new, _ = store.transition(request.id, lambda r: t.approve(r, SAM, policy=p, rule=p.rule_named('prod-read'),
                                                              now=clock.now()))  # fmt: skip
    return new


def active(store: RequestStore, clock: MovableClock, requester: Principal = ALEX) -> AccessRequest:
    request = approved(store, clock, requester)
    store.transition(request.id, lambda r: t.start_grant(r, now=clock.now(), deadline=clock.now() + 900))
    new, _ = store.transition(request.id, lambda r: t.activate(r, now=clock.now()))
    return new


def _chain_intact(store: RequestStore, last: int) -> bool:
    """Events 1..last chain from the start with no gap (what ``jit audit verify`` checks)."""
    entries = [Entry(f'seq {seq}', store.audit_event(seq)) for seq in range(1, last + 1)]
    verdict = verify_chain(entries, start=GENESIS)
    return verdict.ok and verdict.last_seq == last


def step(store: RequestStore, request_id: str, fn) -> AccessRequest:  # type: ignore[no-untyped-def]
    return store.transition(request_id, fn)[0]


# -- requests and their events -------------------------------------------------------------------


def test_a_created_request_reads_back_equal_and_its_event_is_the_first_of_the_chain(store, clock):
    request, event = t.created(make(created_at=clock.now()))
    assert store.create(request, event) == 1
    assert store.get(request.id) == request
    stored = store.audit_event(1)
    assert stored is not None
    assert stored['seq'] == 1 and stored['time'] == clock.now() and stored['event'] == 'request.created'
    assert stored['prev_hash'] == GENESIS_HASH and stored['hash'] == chain_hash(stored, GENESIS_HASH)
    assert store.audit_event(2) is None and store.get('r-nope') is None


def test_creating_an_existing_id_is_refused_and_writes_nothing(store, clock):
    request = filed(store, clock)
    again = AccessRequest.from_json(request.to_json().replace('INC-1', 'INC-2'))
    with pytest.raises(ValueError, match='exists'):
        store.create(again, t.created(again)[1])
    assert store.get(request.id) == request and store.audit_event(2) is None


def test_a_transition_writes_the_new_request_and_chains_its_event(store, clock):
    request = filed(store, clock)
    clock.t += 5
    new, seq = store.transition(request.id, lambda r: t.cancel(r, ALEX, now=clock.now()))
    assert seq == 2 and new.status is S.CANCELLED and store.get(request.id) == new
    first, second = store.audit_event(1), store.audit_event(2)
    assert first is not None and second is not None
    assert second['prev_hash'] == first['hash'] and second['time'] == clock.now()
    assert store.record(AuditEvent(event='policy.loaded', actor='jit', outcome='ok')) == 3
    assert _chain_intact(store, 3)


def test_a_step_that_raises_writes_nothing(store, clock):
    request = filed(store, clock)
    with pytest.raises(InvalidTransition):
        store.transition(request.id, lambda r: t.activate(r, now=clock.now()))  # pending cannot be active
    assert store.get(request.id) == request and store.audit_event(2) is None
    with pytest.raises(RequestNotFound):
        store.transition('r-missing', lambda r: t.cancel(r, ALEX, now=0))


def test_concurrent_transitions_each_see_the_last_and_the_chain_has_no_gap(store, clock):
    """Eight threads, 5 steps each, on 4 requests: every step applied once, seqs 1..N, the chain intact."""
    requests = [active(store, clock) for _ in range(4)]
    before = 4 * 4  # created, approved, granting, active

    def extend(request_id: str) -> None:
        for _ in range(5):
            store.transition(request_id, lambda r: t.extend(r, by=60, actor=ALEX, now=clock.now(), max_total=10**6))

    threads = [threading.Thread(target=extend, args=(requests[i % 4].id,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for request in requests:
        assert store.get(request.id).duration == 600 + 2 * 5 * 60  # type: ignore[union-attr]
    assert _chain_intact(store, before + 40) and store.audit_event(before + 41) is None


def test_a_persons_requests_come_newest_first_and_a_pipelines_apart(store, clock):
    ids = []
    for _ in range(3):
        ids.append(filed(store, clock).id)
        clock.t += 1
    pipeline = filed(store, clock, PIPE)
    assert [r.id for r in store.for_user(ALEX.owner_key)] == ids[::-1]
    assert [r.id for r in store.for_user(ALEX.owner_key, limit=2)] == ids[:0:-1]
    assert [r.id for r in store.for_user(PIPE.owner_key)] == [pipeline.id]
    assert store.for_user(DANA.owner_key) == []


def test_pending_lists_undecided_requests_oldest_first_and_drops_decided_ones(store, clock):
    first = filed(store, clock)
    clock.t += 1
    second = filed(store, clock)
    assert [r.id for r in store.pending()] == [first.id, second.id]
    step(store, first.id, lambda r: t.cancel(r, ALEX, now=clock.now()))
    assert [r.id for r in store.pending()] == [second.id]


def test_a_pending_request_expires_from_its_pending_until(store, clock):
    request = filed(store, clock, pending_until=clock.now() + 60)
    assert store.pending_expired(clock.now() + 59) == []
    assert store.pending_expired(clock.now() + 60) == [request.id]
    step(store, request.id, lambda r: t.expire(r, now=clock.now()))
    assert store.pending_expired(clock.now() + 60) == []


# -- the grant indexes ---------------------------------------------------------------------------


def test_an_approved_request_is_watched_until_its_grant_is_active(store, clock):
    request = approved(store, clock)
    watched_at = clock.now() + redis_store.WATCH_AFTER
    assert store.stalled_grants(watched_at - 1) == [] and store.stalled_grants(watched_at) == [request.id]
    store.watch(request.id, watched_at + 100)
    assert store.stalled_grants(watched_at + 99) == []
    store.transition(request.id, lambda r: t.start_grant(r, now=clock.now(), deadline=clock.now() + 900))
    assert store.stalled_grants(watched_at + 100) == [request.id]  # granting keeps the score it had
    store.transition(request.id, lambda r: t.activate(r, now=clock.now()))
    assert store.stalled_grants(float('inf')) == []
    store.watch(request.id, 0)  # not approved or granting any more: watch does nothing
    assert store.stalled_grants(float('inf')) == []


def test_unwatch_ends_the_watch(store, clock):
    request = approved(store, clock)
    store.unwatch(request.id)
    assert store.stalled_grants(float('inf')) == []


def test_a_grant_is_due_for_revoke_from_its_deadline_then_from_its_expiry_and_no_more_once_revoked(store, clock):
    request = approved(store, clock)
    assert store.due_at(request.id) is None
    store.transition(request.id, lambda r: t.start_grant(r, now=clock.now(), deadline=clock.now() + 900))
    assert store.due_at(request.id) == clock.now() + 900  # a worker that dies mid-grant leaves a revoke behind
    new = step(store, request.id, lambda r: t.activate(r, now=clock.now()))
    assert store.get_with_due(request.id) == (new, clock.now() + 600)
    assert store.due_for_revoke(clock.now() + 599) == [] and store.due_for_revoke(clock.now() + 600) == [request.id]
    assert [r.id for r in store.live_grants()] == [request.id]
    assert store.note_revoke_failure(request.id) == 1 and store.note_revoke_failure(request.id) == 2
    step(store, request.id, lambda r: t.revoke(r, now=clock.now()))
    assert store.get_with_due(request.id)[1] is None and store.live_grants() == []
    assert store.note_revoke_failure(request.id) == 1  # the count ended with the grant


def test_due_revokes_come_earliest_first_up_to_the_limit(store, clock):
    grants = []
    for minutes in (3, 1, 2):
        request = approved(store, clock)
        store.transition(request.id, lambda r: t.start_grant(r, now=clock.now(), deadline=clock.now() + 900))
        step(store, request.id, lambda r, m=minutes: t.activate(r, now=clock.now(), until=clock.now() + m * 60))
        grants.append(request.id)
    assert store.due_for_revoke(clock.now() + 180) == [grants[1], grants[2], grants[0]]
    assert store.due_for_revoke(clock.now() + 180, limit=2) == [grants[1], grants[2]]


def test_a_failed_grant_stays_due_for_a_clean_up_revoke(store, clock):
    request = approved(store, clock)
    store.transition(request.id, lambda r: t.start_grant(r, now=clock.now(), deadline=clock.now() + 900))
    clock.t += 3
    step(store, request.id, lambda r: t.fail(r, error='boom', now=clock.now()))
    assert store.due_at(request.id) == clock.now()
    store.clear_due(request.id)
    assert store.due_at(request.id) is None


def test_a_failing_revoke_is_postponed_only_while_it_is_due(store, clock):
    request = active(store, clock)
    store.postpone_revoke(request.id, clock.now() + 5000)
    assert store.due_at(request.id) == clock.now() + 5000
    store.clear_due(request.id)
    store.postpone_revoke(request.id, clock.now() + 6000)
    assert store.due_at(request.id) is None


def test_an_end_asked_for_moves_the_revoke_earlier_never_later_and_the_first_stays_on_record(store, clock):
    request = active(store, clock)
    assert store.mark_end(request.id, at=clock.now() + 100, actor='U0ALEX', why='released')
    assert store.mark_end(request.id, at=clock.now() + 300, actor='U0SEC', why='revoked by an admin')
    assert store.due_at(request.id) == clock.now() + 100
    assert store.mark_end(request.id, at=clock.now() + 50, actor='U0SEC', why='revoked by an admin')
    ended = store.get(request.id)
    assert store.due_at(request.id) == clock.now() + 50
    assert ended is not None and ended.ending == {'at': clock.now() + 100, 'actor': 'U0ALEX', 'why': 'released'}
    with pytest.raises(InvalidTransition, match='already ending'):
        store.transition(request.id, lambda r: t.extend(r, by=60, actor=ALEX, now=clock.now(), max_total=10**6))


def test_a_later_write_of_an_ending_grant_never_moves_its_due_time_back(store, clock):
    """Earliest wins in the due index itself, whatever step writes the active grant after an end was asked for:
    a write that moves ``expires_at`` later (as an extension would, were one let through) keeps the revoke due
    at the end asked for."""
    request = active(store, clock)
    assert store.mark_end(request.id, at=clock.now() + 100, actor='U0SEC', why='revoked by an admin')
    later = request.expires_at + 3600

    def step(r: AccessRequest) -> tuple[AccessRequest, AuditEvent]:
        new = replace(r, expires_at=later, duration=r.duration + 3600)
        return new, AuditEvent.about(new, AuditName.GRANT_EXTENDED, ALEX)

    store.transition(request.id, step)
    assert store.get(request.id).expires_at == later
    assert store.due_at(request.id) == clock.now() + 100


def test_nothing_to_end_for_a_request_that_holds_no_grant(store, clock):
    pending = filed(store, clock)
    assert not store.mark_end(pending.id, at=clock.now(), actor='U0ALEX', why='released')
    assert not store.mark_end('r-missing', at=clock.now(), actor='U0ALEX', why='released')
    revoked = active(store, clock)
    step(store, revoked.id, lambda r: t.revoke(r, now=clock.now()))
    assert not store.mark_end(revoked.id, at=clock.now(), actor='U0ALEX', why='released')
    assert store.get(pending.id) == pending


def test_holders_are_the_requests_holding_one_access_for_one_person(store, clock):
    first, second = active(store, clock), active(store, clock)
    other_person = active(store, clock, DANA)
    assert store.holders(first) == {first.id, second.id}
    assert store.holders(other_person) == {other_person.id}
    step(store, first.id, lambda r: t.revoke(r, now=clock.now()))
    assert store.holders(second) == {second.id}


def test_when_a_grant_was_last_seen_in_use_only_moves_forward(store, clock):
    request = active(store, clock)
    assert store.note_seen(request.id, 100.0) == 100.0
    assert store.note_seen(request.id, 50.0) == 100.0
    assert store.note_seen(request.id, 150.0) == 150.0


def test_live_grants_are_the_active_ones_not_yet_due(store, clock):
    live, ended = active(store, clock), active(store, clock)
    store.mark_end(ended.id, at=clock.now() - 1, actor='jit', why='idle')
    approved(store, clock)
    assert [r.id for r in store.live_grants()] == [live.id]


# -- leases, limits, keys ------------------------------------------------------------------------


def test_a_lease_is_one_holders_until_released_or_lapsed(store):
    name = f'turn-{uuid.uuid4().hex[:6]}'
    assert store.lease(name, 5)
    assert not store.lease(name, 5)  # held (by this store too: a lease is not re-entrant)
    assert store.renew_lease(name, 5)
    store.release_lease(name)
    assert store.lease(name, 0.2)
    time.sleep(0.35)
    assert not store.renew_lease(name, 5)  # lapsed: it may be someone else's by now
    assert store.lease(name, 5)


def test_a_store_cannot_renew_or_free_a_lease_it_does_not_hold(store, clock):
    name = f'turn-{uuid.uuid4().hex[:6]}'
    assert store.lease(name, 0.2)
    time.sleep(0.35)
    other = _twin(store, clock)  # another process, same data
    assert other.lease(name, 5)
    store.release_lease(name)  # the lapsed holder lets go of what is now another's: nothing happens
    assert not store.lease(name, 5) and other.renew_lease(name, 5)


def _twin(store: RequestStore, clock: MovableClock) -> RequestStore:
    """A second store on the same data, with leases of its own (another process)."""
    if isinstance(store, RedisStore):
        return RedisStore(store.redis, clock=clock, prefix=store.prefix)
    twin = MemoryStore(clock=clock)
    twin.__dict__.update({k: v for k, v in store.__dict__.items() if k != '_tokens'})
    return twin


def test_a_sliding_window_counts_to_its_limit_and_says_how_long_to_wait(store):
    name = f'requests:{uuid.uuid4().hex[:6]}'
    assert [store.take_slot(name, now=1000.0 + i, window=60, limit=3) for i in range(3)] == [None, None, None]
    assert store.take_slot(name, now=1010.0, window=60, limit=3) == pytest.approx(50.0)
    assert store.take_slot(name, now=1060.0, window=60, limit=3) is None  # the first use left the window
    assert store.take_slot(name, now=1060.5, window=60, limit=3) == pytest.approx(0.5)


def test_ssh_keys_are_kept_per_user(store):
    assert store.ssh_key('U0ALEX') is None
    store.set_ssh_key('U0ALEX', 'ssh-ed25519 AAAA alex')
    store.set_ssh_key('U0ALEX', 'ssh-ed25519 BBBB alex')
    assert store.ssh_key('U0ALEX') == 'ssh-ed25519 BBBB alex' and store.ssh_key('U0DANA') is None


def test_the_twin_watches_as_long_as_the_real_store():
    assert memory_store.WATCH_AFTER == redis_store.WATCH_AFTER and memory_store.HOLDING == redis_store.HOLDING


def test_the_policy_in_force_swaps_once_per_change_a_return_to_an_earlier_version_too(store):
    """Of the processes that notice one change, exactly one hears True (and records it)."""
    heard = [store.swap_policy_in_force(v) for v in ('a', 'a', 'b', 'b', 'a', 'a')]
    assert heard == [True, False, True, False, True, False]
