"""Every transition writes exactly one audit event, whatever the sequence of actions (Hypothesis, real Redis).

The machine of ``tests/stateful/test_lifecycle_machine.py`` (with ``pending_timeout`` rules, so requests
expire too) drives the real use cases - request, approve, deny, cancel, grant jobs, release, admin revoke,
revoke jobs, the sweeper, crashes, time - on Redis database 9. Its store counts what it was asked to write:
each ``create``, successful ``transition`` and ``record`` must be exactly one event of the stream, with that
seq, that request and that event name, and nothing else may be in the stream. After each step the chain
verifies (``bot.audit.sources.RedisSource.check``), and the file sink, pumped from the stream, holds the
same events and verifies too; the teardown's sweeps (which revoke whatever is still granted) are checked alike.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis.stateful import invariant

import tests.stateful.test_lifecycle_machine as lifecycle
from bot.adapters.redis_store import RedisStore
from bot.audit.sources import FileSource, RedisSource
from bot.usecases.revoke_access import ALERT_AFTER_FAILURES
from tests.audit.conftest import MACHINE_REDIS_URL
from tests.core.policy_fixtures import ALEX, DANA, SAM, SEC
from workers.audit_pump import AuditPump
from workers.audit_sinks import FileSink

pytestmark = pytest.mark.redis

#: Event names over all examples, to show the machine reached every kind of transition.
SEEN: set[str] = set()
#: Writes checked against the stream, over all examples (the last check of each example).
CHECKED: dict[str, int] = {}


class CountingStore(RedisStore):
    """The real store, noting every write it was asked for and made: ``(seq, request id, event name)``."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.writes: list[tuple[int, str | None, str]] = []

    def create(self, request: Any, event: Any) -> int:
        seq = super().create(request, event)
        self.writes.append((seq, request.id, event.event))
        return seq

    def transition(self, request_id: str, step: Any) -> Any:
        made: list[str] = []

        def noted(old: Any) -> Any:
            new, event = step(old)
            made[:] = [event.event]  # WATCH may run the step again: the last run is the one written
            return new, event

        new, seq = super().transition(request_id, noted)
        self.writes.append((seq, request_id, made[0]))
        return new, seq

    def record(self, event: Any) -> int:
        seq = super().record(event)
        self.writes.append((seq, (event.request or {}).get('id'), event.event))
        return seq


class OneEventPerTransition(lifecycle.PendingTimeoutMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.TemporaryDirectory()
        self.sink = FileSink(Path(self.folder.name) / 'audit.jsonl')
        self.pump = AuditPump(store=self.store, sinks=[self.sink], clock=self.clock)

    @invariant()
    def one_event_per_write(self) -> None:
        """The stream is exactly the writes, one event each, and its chain verifies."""
        events = self.store.audit_events(1, 100_000)
        SEEN.update(e['event'] for e in events)
        got = [(e['seq'], (e.get('request') or {}).get('id'), e['event']) for e in events]
        assert got == self.store.writes
        check = RedisSource(self.r, prefix=self.prefix).check()
        assert check.ok, check.finding
        assert check.verdict.count == len(self.store.writes)
        CHECKED[self.prefix] = len(events)

    def _check_after_sweep(self) -> None:
        """After each sweep (the teardown's too, which revoke whatever is still granted): the writes, and the
        file sink's copy of the stream."""
        super()._check_after_sweep()
        self.one_event_per_write()
        events = self.store.audit_events(1, 100_000)
        assert list(self.pump.pump_once().values()) == [len(events)]
        if events:
            copy = FileSource(self.sink.path).check()
            assert copy.ok and copy.verdict.count == len(events) and copy.verdict.head == events[-1]['hash']

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            self.folder.cleanup()


@pytest.fixture(name='machine_db')
def _machine_db(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine on database 9, with the counting store."""
    client = redis.Redis.from_url(MACHINE_REDIS_URL, decode_responses=True)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f'no Redis at {MACHINE_REDIS_URL}')
    client.flushdb()
    monkeypatch.setattr(lifecycle, 'REDIS_URL', MACHINE_REDIS_URL)
    monkeypatch.setattr(lifecycle, 'RedisStore', CountingStore)
    SEEN.clear()
    CHECKED.clear()
    yield
    client.flushdb()


def test_every_transition_writes_exactly_one_event(machine_db, capsys):
    """Any interleaving of the actions: one event per transition, none without one, the chain intact."""
    OneEventPerTransition.TestCase.settings = settings(
        max_examples=25, stateful_step_count=40, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )  # fmt: skip
    OneEventPerTransition.TestCase().runTest()
    assert CHECKED and sum(CHECKED.values()) > 0
    with capsys.disabled():
        print(
            f'\nAUDIT one event per transition: {sum(CHECKED.values())} events over {len(CHECKED)} examples, '
            f'each the one write of its transition; kinds: {", ".join(sorted(SEEN))}'
        )


def test_each_kind_of_transition_writes_one_event(machine_db):
    """The same checks along one scripted run that reaches every kind of transition (random runs may miss one)."""
    machine = OneEventPerTransition()
    steps: list[tuple[str, Callable[[], Any]]] = []
    rid: dict[str, str] = {}

    def file(name: str, *spec: Any) -> Callable[[], Any]:
        return lambda: rid.__setitem__(name, machine._file(*spec))

    steps = [
        ('file, deny', file('denied', DANA, 'prod-db', 'read', 900, 'CHG-7 migration')),
        ('deny', lambda: machine.deny(rid['denied'], SAM, 'no')),
        ('file, cancel', file('cancelled', ALEX, 'prod-db', 'read', None, 'INC-42 the orders table')),
        ('cancel', lambda: machine.cancel(rid['cancelled'], True, ALEX)),
        ('file, expire', file('expired', ALEX, 'demo', None, 300, 'demo')),
        ('wait', lambda: machine.tick(3700)),
        ('sweep: expires', machine.sweep),
        ('file, auto-approved', file('expiring', SAM, 'demo', None, 600, '')),
        ('file, approve', file('released', DANA, 'prod-db', 'read', 900, 'CHG-7 migration')),
        ('approve', lambda: machine.approve(rid['released'], SEC)),
        ('file, auto-approved', file('admin', SAM, 'demo', None, 600, '')),
        ('grant jobs', machine.run_grant_jobs),
        ('release', lambda: machine.release(rid['released'], True, DANA)),
        ('admin revoke', lambda: machine.admin_revoke(rid['admin'], SEC)),
        ('revoke jobs', lambda: machine.run_due_revokes()),
        ('expire the grant', lambda: machine.tick(700)),
        ('sweep: revokes', machine.sweep),
        ('provider refuses', lambda: machine.provider_mode('permanent')),
        ('file, auto-approved', file('failed', SAM, 'demo', None, 600, '')),
        ('grant job fails', machine.run_grant_jobs),
        ('provider works', lambda: machine.provider_mode('ok')),
        ('sweep: cleans up after the refused grant', lambda: (machine.tick(2), machine.sweep())),
        ('file, auto-approved', file('stuck', SAM, 'demo', None, 600, '')),
        ('grant jobs', machine.run_grant_jobs),
        ('provider down', lambda: machine.provider_mode('down')),
        ('expire the grant', lambda: machine.tick(700)),
        *[('revoke fails', lambda: (machine.tick(16), machine.sweep())) for _ in range(ALERT_AFTER_FAILURES)],
        ('provider back', lambda: machine.provider_mode('ok')),
        ('wait', lambda: machine.tick(3600)),
        ('sweep: revokes', machine.sweep),
    ]
    try:
        for what, step in steps:
            step()
            machine.one_event_per_write()
            machine.audit_trail_matches_transitions()
            assert not machine.provider.problems, what
        machine.teardown()
    finally:
        machine.folder.cleanup()
    every = {'request.created', 'request.approved', 'request.denied', 'request.expired', 'request.cancelled',
             'grant.started', 'grant.active', 'grant.failed', 'grant.revoked', 'grant.revoke_failed'}  # fmt: skip
    assert every == SEEN
