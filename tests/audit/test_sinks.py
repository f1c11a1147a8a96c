"""The audit sinks and their pump against real Redis and a real HTTP receiver: resume, signatures, retention."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from structlog.testing import capture_logs

from bot.adapters.redis_store import RedisStore
from bot.audit.records import dumps
from bot.audit.sources import FileSource, RedisSource
from bot.settings import load_settings
from tests.audit.conftest import REDIS_URL, cli
from tests.audit.seed import Jit, ts
from tests.core.policy_fixtures import ALEX, SAM
from workers.audit_pump import AuditPump, build_audit_pump
from workers.audit_sinks import FileSink, WebhookSink

pytestmark = pytest.mark.redis

SECRET = 'siem-shared-secret'


def _seqs(path: Path) -> list[int]:
    return [json.loads(line)['seq'] for line in path.read_text().splitlines()]


def test_the_file_sink_resumes_after_a_restart_without_duplicates(seeded, cli_env, tmp_path, capsys):
    """A crash after the write but before the cursor moved, and a line torn mid-write: the file stays exact."""
    jit, _ = seeded
    path = tmp_path / 'audit.jsonl'
    pump = AuditPump(store=jit.store, sinks=[FileSink(path)], clock=jit.clock)
    key = pump.sinks[0].key
    assert pump.pump_once() == {key: 54}
    assert _seqs(path) == list(range(1, 55))
    jit.store.redis.hset(f'jit:audit:sink:{key}', 'seq', 20)  # the cursor as a crash left it: behind the file
    with path.open('ab') as torn:
        torn.write(b'{"seq":55,"time":17')  # and a write cut short by the same crash
    jit.at('2026-12-02T09:00:00+00:00').file(ALEX, 'prod-db', 'read', 900, 'INC-13 after the restart')
    restarted = AuditPump(store=jit.store, sinks=[FileSink(path)], clock=jit.clock)  # a new worker process
    with capture_logs() as logs:
        assert restarted.pump_once() == {key: 55}
    assert _seqs(path) == list(range(1, 56))
    assert [entry['event'] for entry in logs] == ['audit.file_torn_line']
    assert restarted.pump_once() == {key: 55} and _seqs(path) == list(range(1, 56))  # nothing new: nothing written
    assert cli('verify', '--file', str(path)) == 0
    assert capsys.readouterr().out == f'55 events, chain intact, head {jit.store.audit_event(55)["hash"]}\n'


def test_a_file_that_jit_did_not_write_is_not_appended_to(jit, tmp_path):
    """A file whose last line is not an audit event makes the sink fail (and retry) rather than mix into it."""
    path = tmp_path / 'notes.txt'
    path.write_text('my own notes\n')
    jit.file(ALEX, 'prod-db', 'read', 900, 'INC-1')
    pump = AuditPump(store=jit.store, sinks=[FileSink(path)], clock=jit.clock, first_backoff=0)
    with capture_logs() as logs:
        assert pump.pump_once() == {pump.sinks[0].key: 0}
    assert path.read_text() == 'my own notes\n'
    assert logs[0]['event'] == 'audit.sink_failed' and 'is not an audit event' in logs[0]['error']


class Siem:
    """An HTTP receiver that checks ``X-JIT-Signature`` itself (HMAC-SHA256 of the raw body) and keeps the events."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.events: dict[int, dict[str, Any]] = {}
        self.posts: list[tuple[str, int]] = []  # (X-JIT-Audit-Seq, the answer)
        self.fail_next = 0
        siem = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers['Content-Length']))
                expected = 'sha256=' + hmac.new(siem.secret, body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(self.headers.get('X-JIT-Signature', ''), expected):
                    code = 401
                elif siem.fail_next:
                    siem.fail_next -= 1
                    code = 503
                else:
                    code = 200
                    for event in json.loads(body)['events']:
                        siem.events[event['seq']] = event  # dedupe by seq: delivery is at least once
                siem.posts.append((self.headers.get('X-JIT-Audit-Seq', ''), code))
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.server.server_address[1]}/audit'
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(name='siem')
def _siem() -> Iterator[Siem]:
    siem = Siem(SECRET)
    yield siem
    siem.server.shutdown()
    siem.server.server_close()


def test_the_siem_webhook_gets_signed_batches_retried_until_taken(seeded, siem, tmp_path):
    """503s are retried from the same cursor; the file sink is not held back meanwhile; a wrong secret is refused."""
    jit, _ = seeded
    webhook, path = WebhookSink(siem.url, SECRET), tmp_path / 'audit.jsonl'
    webhook.page = 20
    pump = AuditPump(store=jit.store, sinks=[webhook, FileSink(path)], clock=jit.clock, first_backoff=0)
    siem.fail_next = 2
    with capture_logs() as logs:
        pump.pump_once()
    assert pump.cursor(webhook) == 0 and _seqs(path) == list(range(1, 55))
    assert [(e['event'], e['error']) for e in logs] == [('audit.sink_failed', 'the SIEM answered HTTP 503')]
    pump.pump_once()
    assert pump.cursor(webhook) == 0
    pump.pump_once()
    assert pump.cursor(webhook) == 54
    assert sorted(siem.events) == list(range(1, 55))
    assert siem.events[53] == jit.store.audit_event(53)
    assert siem.posts == [('1-20', 503), ('1-20', 503), ('1-20', 200), ('21-40', 200), ('41-54', 200)]
    forger = WebhookSink(siem.url + '?v=2', 'not-the-secret')
    AuditPump(store=jit.store, sinks=[forger], clock=jit.clock).pump_once()
    assert siem.posts[-1] == ('1-54', 401) and len(siem.events) == 54


def _copy_history(r: redis.Redis, records: list[dict[str, Any]], prefix: str, clock: Any) -> RedisStore:
    """The same events under another prefix, written as the store writes them (for trials that trim)."""
    pipe = r.pipeline()
    for record in records:
        pipe.xadd(prefix + 'audit', {'event': json.dumps(record, sort_keys=True)}, id=f'{record["seq"]}-1')
    pipe.hset(prefix + 'audit:head', mapping={'seq': records[-1]['seq'], 'hash': records[-1]['hash']})
    pipe.execute()
    return RedisStore(r, clock=clock, prefix=prefix)


def test_retention_never_trims_what_is_not_in_every_durable_sink(seeded, tmp_path):
    """Random cursors of two file sinks and random dates: the stream loses only events both files hold and that
    are older than the retention; the trim mark lets verify go on from the first event left."""
    jit, _ = seeded
    records = jit.store.audit_events(1, 1000)
    rng = random.Random(11)
    retention = 7 * 86400.0
    limits = set()  # what held the trim back, over the trials
    for trial in range(25):
        store = _copy_history(jit.store.redis, records, f'trial{trial}:', jit.clock)
        files = [FileSink(tmp_path / f'{trial}-a.jsonl'), FileSink(tmp_path / f'{trial}-b.jsonl')]
        cursors = [rng.randint(0, len(records)) for _ in files]
        for sink, cursor in zip(files, cursors, strict=True):
            if cursor:
                sink.deliver(records[:cursor], {})
            store.redis.hset(f'trial{trial}:audit:sink:{sink.key}', 'seq', cursor)
        jit.clock.t = rng.uniform(ts('2026-10-01T00:00:00+00:00'), ts('2027-01-01T00:00:00+00:00'))
        pump = AuditPump(store=store, sinks=files, clock=jit.clock, retention=retention)
        trimmed = pump.trim_once()
        old = [r['seq'] for r in records if r['time'] < jit.clock.t - retention and r['seq'] <= min(cursors)]
        expected = max((s for s in old if old[:s] == list(range(1, s + 1))), default=0)
        assert trimmed == expected, f'trial {trial}: cursors {cursors}'
        older = sum(1 for r in records if r['time'] < jit.clock.t - retention)
        limits.add('nothing' if expected == 0 else 'a sink' if expected == min(cursors) < older else 'the age')
        left = store.audit_events(1, 1000)
        assert [r['seq'] for r in left] == list(range(expected + 1, len(records) + 1))
        for sink in files:  # everything trimmed is in both durable sinks
            if expected:
                assert set(range(1, expected + 1)) <= set(_seqs(sink.path))
        check = RedisSource(store.redis, prefix=f'trial{trial}:').check()
        assert check.ok and check.verdict.count == len(records) - expected
        assert check.verdict.first_seq == (expected + 1 if expected < len(records) else None)
    assert limits == {'nothing', 'a sink', 'the age'}


def test_retention_is_refused_without_a_durable_sink(seeded, siem):
    """With only the SIEM (not durable) the pump says at start that it will not trim, and does not."""
    jit, _ = seeded
    with capture_logs() as logs:
        pump = AuditPump(store=jit.store, sinks=[WebhookSink(siem.url, SECRET)], clock=jit.clock, retention=86400.0)
    assert logs[0]['event'] == 'audit.retention_refused' and logs[0]['log_level'] == 'warning'
    assert 'no durable sink' in logs[0]['reason']
    pump.pump_once()
    jit.clock.t = ts('2030-01-01T00:00:00+00:00')
    assert pump.trim_once() == 0
    assert len(jit.store.audit_events(1, 1000)) == 54
    env = {'SLACK_BOT_TOKEN': 'xoxb-1', 'SLACK_SIGNING_SECRET': 's', 'JIT_AUDIT_RETENTION': '30d'}
    with capture_logs() as logs:
        assert build_audit_pump(load_settings(env), store=jit.store, clock=jit.clock) is None
    assert [e['event'] for e in logs] == ['audit.retention_refused']


def test_the_worker_pump_thread_from_settings(r8, tmp_path):
    """``jit worker``'s pump, built from the settings, copies new events to the file within a moment."""
    jit = Jit(redis.Redis.from_url(REDIS_URL, decode_responses=True))
    path = tmp_path / 'audit.jsonl'
    settings = load_settings({'SLACK_BOT_TOKEN': 'xoxb-1', 'SLACK_SIGNING_SECRET': 's', 'JIT_AUDIT_FILE': str(path),
                              'JIT_AUDIT_RETENTION': '90d'})  # fmt: skip
    pump = build_audit_pump(settings, store=jit.store, clock=jit.clock)
    assert pump is not None and [s.key for s in pump.sinks] == [FileSink(path).key]
    pump.interval = 0.05
    pump.start()
    try:
        rid = jit.file(ALEX, 'prod-db', 'read', 900, 'INC-5 watching the pump')
        jit.approve.execute(rid, SAM)
        deadline = time.monotonic() + 5
        while (not path.exists() or len(_seqs(path)) < 2) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        pump.stop()
    assert _seqs(path) == [1, 2]
    assert FileSource(path).check().summary() == f'2 events, chain intact, head {jit.store.audit_event(2)["hash"]}'
    assert path.read_text() == ''.join(dumps(e) + '\n' for e in jit.store.audit_events(1, 10))
