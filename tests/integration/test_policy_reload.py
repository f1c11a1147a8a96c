"""Policy reload against a real Redis: a new version is recorded once, a bad one is refused and the last
good policy stays in force, and both reach the audit trail."""

from __future__ import annotations

import os
import time

import pytest
import redis

from bot.adapters.policy_source import PolicySource
from bot.adapters.redis_store import RedisStore
from bot.deps import SystemClock
from bot.usecases.record_policy import RecordPolicyChange
from tests.support.redis_server import own_redis_url

pytestmark = pytest.mark.redis
GOOD = 'resources:\n  demo: {provider: webhook, roles: [read]}\nrequests:\n  - name: all\n    approvers: [U0SAM]\n'


class RecordingQueue:
    def __init__(self):
        self.notified = []

    def enqueue_notify(self, seq):
        self.notified.append(seq)


@pytest.fixture(name='store')
def _store():
    client = redis.Redis.from_url(own_redis_url(12),
                                  decode_responses=True)  # fmt: skip
    client.flushdb()
    yield RedisStore(client, clock=SystemClock())
    client.flushdb()


def touch(path, text):
    path.write_text(text)
    stamp = time.time() + 1
    os.utime(path, (stamp, stamp))


def test_reload_records_loaded_and_rejected_and_keeps_last_good(tmp_path, store):
    """Start: policy.loaded. A bad edit: rejected with file:line, old policy kept. A good edit: loaded."""
    (tmp_path / 'p.yaml').write_text(GOOD)
    queue = RecordingQueue()
    source = PolicySource(tmp_path, providers={'webhook'}, check_every=0,
                          observer=RecordPolicyChange(store=store, queue=queue))  # fmt: skip
    source.announce()
    first = source().version
    touch(tmp_path / 'p.yaml', GOOD + '    timeout: forever\n')
    assert source().version == first  # the bad file is refused; the last good policy stays
    touch(tmp_path / 'p.yaml', GOOD.replace('read', 'write'))
    assert source().version != first
    events = store.audit_events()
    assert [(e['event'], e['outcome']) for e in events] == [
        ('policy.loaded', 'loaded'),
        ('policy.loaded', 'rejected'),
        ('policy.loaded', 'loaded'),
    ]
    assert f'{tmp_path}/p.yaml:6:5: `timeout`' in events[1]['error']
    assert events[1]['policy_version'] == first and events[2]['policy_version'] == source().version
    assert queue.notified == [e['seq'] for e in events]


def test_a_second_process_does_not_record_the_same_version_again(tmp_path, store):
    """Two web processes see the same policy: one audit event."""
    (tmp_path / 'p.yaml').write_text(GOOD)
    for _ in range(2):
        PolicySource(tmp_path, providers={'webhook'},
                     observer=RecordPolicyChange(store=store, queue=RecordingQueue())).announce()  # fmt: skip
    assert [e['event'] for e in store.audit_events()] == ['policy.loaded']


def test_version_carries_the_git_commit(tmp_path, store):
    """In a git checkout the loaded event names the commit beside the content hash."""
    import subprocess

    (tmp_path / 'p.yaml').write_text(GOOD)
    git = ['git', '-C', str(tmp_path), '-c', 'user.name=t', '-c', 'user.email=t@example.com']
    subprocess.run([*git, 'init', '-q'], check=True)
    subprocess.run([*git, 'add', '.'], check=True)
    subprocess.run([*git, 'commit', '-qm', 'policy'], check=True)
    head = subprocess.run([*git, 'rev-parse', 'HEAD'], capture_output=True, text=True, check=True).stdout.strip()
    PolicySource(tmp_path, providers={'webhook'}, observer=RecordPolicyChange(store=store, queue=RecordingQueue())
                 ).announce()  # fmt: skip
    assert store.audit_events()[0]['detail']['commit'] == head
