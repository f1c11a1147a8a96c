"""Policy reload against a real Redis: a new version is recorded once, a bad one is refused and the last
good policy stays in force, and both reach the audit trail. Loads run on a thread of their own: asking for
the policy never waits for one, whatever the files hold."""

from __future__ import annotations

import os
import threading
import time

import pytest
import redis
from structlog.testing import capture_logs

from bot.adapters import policy_source
from bot.adapters.policy_source import PolicySource
from bot.adapters.redis_store import RedisStore
from bot.core.errors import PolicyConfigError
from bot.deps import SystemClock
from bot.usecases.record_policy import RecordPolicyChange
from tests.core.test_policy_loader_limits import BOMB
from tests.support.processes import wait_until
from tests.support.redis_server import own_redis_url

pytestmark = pytest.mark.redis
GOOD = 'resources:\n  demo: {provider: webhook, roles: [read]}\nrequests:\n  - name: all\n    approvers: [U0SAM]\n'


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
    source = PolicySource(tmp_path, providers={'webhook'}, check_every=3600,
                          observer=RecordPolicyChange(store=store))  # fmt: skip
    source.announce()
    first = source().version
    touch(tmp_path / 'p.yaml', GOOD + '    timeout: forever\n')
    source.check()  # what the watcher thread does every check_every seconds
    assert source().version == first  # the bad file is refused; the last good policy stays
    touch(tmp_path / 'p.yaml', GOOD.replace('read', 'write'))
    source.check()
    assert source().version != first
    events = store.audit_events()
    assert [(e['event'], e['outcome']) for e in events] == [
        ('policy.loaded', 'loaded'),
        ('policy.loaded', 'rejected'),
        ('policy.loaded', 'loaded'),
    ]
    assert f'{tmp_path}/p.yaml:6:5: `timeout`' in events[1]['error']
    assert events[1]['policy_version'] == first and events[2]['policy_version'] == source().version


def test_a_second_process_does_not_record_the_same_version_again(tmp_path, store):
    """Two web processes see the same policy: one audit event."""
    (tmp_path / 'p.yaml').write_text(GOOD)
    for _ in range(2):
        PolicySource(tmp_path, providers={'webhook'},
                     observer=RecordPolicyChange(store=store)).announce()  # fmt: skip
    assert [e['event'] for e in store.audit_events()] == ['policy.loaded']


def test_every_change_of_the_policy_in_force_is_one_event_a_revert_too(tmp_path, store):
    """A, then B, then A again, each noticed by two processes: three policy.loaded events, the last naming A
    (a revert within a day once went unrecorded, and the trail named B while A was in force)."""
    (tmp_path / 'p.yaml').write_text(GOOD)
    processes = [PolicySource(tmp_path, providers={'webhook'}, check_every=3600,
                              observer=RecordPolicyChange(store=store)) for _ in range(2)]  # fmt: skip
    for source in processes:
        source.announce()
    versions = []
    for text in (GOOD.replace('read', 'write'), GOOD):
        touch(tmp_path / 'p.yaml', text)
        for source in processes:
            source.check()
        assert len({source().version for source in processes}) == 1
        versions.append(processes[0]().version)
    a, b = processes[0]().version, versions[0]
    assert a != b
    loaded = [(e['event'], e['outcome'], e['policy_version']) for e in store.audit_events()]
    assert loaded == [('policy.loaded', 'loaded', v) for v in (a, b, a)]


def test_version_carries_the_git_commit(tmp_path, store):
    """In a git checkout the loaded event names the commit beside the content hash."""
    import subprocess

    (tmp_path / 'p.yaml').write_text(GOOD)
    git = ['git', '-C', str(tmp_path), '-c', 'user.name=t', '-c', 'user.email=t@example.com']
    subprocess.run([*git, 'init', '-q'], check=True)
    subprocess.run([*git, 'add', '.'], check=True)
    subprocess.run([*git, 'commit', '-qm', 'policy'], check=True)
    head = subprocess.run([*git, 'rev-parse', 'HEAD'], capture_output=True, text=True, check=True).stdout.strip()
    PolicySource(tmp_path, providers={'webhook'}, observer=RecordPolicyChange(store=store)
                 ).announce()  # fmt: skip
    assert store.audit_events()[0]['detail']['commit'] == head


def rejected(store):
    return [e for e in store.audit_events() if e['outcome'] == 'rejected']


def test_a_bomb_dropped_in_is_rejected_while_asking_never_waits(tmp_path, store):
    """The alias bomb lands in the policy directory of a running process: every ask answers at once, the load
    is refused with file:line:col, the last good policy stays, and the watcher goes on to load the next edit."""
    (tmp_path / 'p.yaml').write_text(GOOD)
    source = PolicySource(tmp_path, providers={'webhook'}, check_every=0,
                          observer=RecordPolicyChange(store=store))  # fmt: skip
    first = source().version
    (tmp_path / 'bomb.yaml').write_text(BOMB)
    slowest = 0.0

    def asked():
        nonlocal slowest
        started = time.perf_counter()
        policy = source()
        slowest = max(slowest, time.perf_counter() - started)
        return policy

    events = wait_until(lambda: asked() and rejected(store), timeout=5, what='policy.loaded rejected')
    assert f'{tmp_path}/bomb.yaml:1:4: anchors (&a) and aliases (*a) are not allowed' in events[0]['error']
    assert asked().version == first
    (tmp_path / 'bomb.yaml').write_text('x: 1\ng: &a [*a]\n')  # once a RecursionError that ended the watcher
    wait_until(lambda: asked() and len(rejected(store)) == 2, timeout=5, what='second rejection')
    (tmp_path / 'bomb.yaml').unlink()
    touch(tmp_path / 'p.yaml', GOOD.replace('read', 'write'))
    wait_until(lambda: asked().version != first, timeout=5, what='the good edit loaded')
    assert slowest < 0.05


def test_asking_never_waits_for_a_load_in_progress(tmp_path, monkeypatch):
    """However long a load takes, the callers (Slack acks on the event loop, revokes in the worker) get the
    policy in force at once; the new one replaces it when the load is done."""
    (tmp_path / 'p.yaml').write_text(GOOD)
    source = PolicySource(tmp_path, providers={'webhook'}, check_every=0)
    first = source().version
    release, started = threading.Event(), threading.Event()
    real = policy_source.build_policy

    def slow(*args, **kwargs):
        started.set()
        release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(policy_source, 'build_policy', slow)
    touch(tmp_path / 'p.yaml', GOOD.replace('read', 'write'))
    began = time.perf_counter()
    assert source().version == first
    assert started.wait(5)
    for _ in range(100):
        assert source().version == first
    assert time.perf_counter() - began < 0.5
    release.set()
    wait_until(lambda: source().version != first, timeout=5, what='the new policy')


def test_a_loader_crash_of_any_kind_is_a_rejection_not_a_dead_watcher(tmp_path, store, monkeypatch):
    """Whatever escapes the loader is reported as a problem naming the directory; later edits still load."""
    (tmp_path / 'p.yaml').write_text(GOOD)
    source = PolicySource(tmp_path, providers={'webhook'}, check_every=0,
                          observer=RecordPolicyChange(store=store))  # fmt: skip
    first = source().version

    def broken(*args, **kwargs):
        raise RecursionError('maximum recursion depth exceeded')

    monkeypatch.setattr(policy_source, 'build_policy', broken)
    touch(tmp_path / 'p.yaml', GOOD.replace('read', 'write'))
    events = wait_until(lambda: source() and rejected(store), timeout=5, what='the rejection')
    assert events[0]['error'].startswith(f'{tmp_path}:1:1: the policy could not be loaded (RecursionError')
    assert source().version == first
    monkeypatch.undo()
    touch(tmp_path / 'p.yaml', GOOD.replace('read', 'deploy'))
    wait_until(lambda: source().version != first, timeout=5, what='the next edit loaded')


def test_sighup_asks_for_a_load_without_doing_it_in_the_signal_handler(tmp_path):
    """``request_reload`` only sets a flag (safe in a signal handler); the next ask starts the load."""
    path = tmp_path / 'p.yaml'
    path.write_text(GOOD)
    source = PolicySource(tmp_path, providers={'webhook'}, check_every=3600)
    first = source().version
    before = path.stat()
    path.write_text(GOOD.replace('read', 'rite'))  # the same size and inode; the mtime put back below
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert source.check() is False  # no check can see this edit: only the asked-for reload loads it
    source.request_reload()
    wait_until(lambda: source().version != first, timeout=5, what='the reload')


def test_a_file_vanishing_while_listed_does_not_break_asking(tmp_path, monkeypatch):
    """An editor's atomic save removes a file between listing and stat: the check goes on."""
    (tmp_path / 'p.yaml').write_text(GOOD)
    (tmp_path / 'gone.yaml').symlink_to(tmp_path / 'nowhere')
    with pytest.raises(PolicyConfigError) as info:
        PolicySource(tmp_path, providers={'webhook'})
    assert info.value.problems == [
        f'{tmp_path}/gone.yaml:1:1: cannot read the file: it does not exist (a dangling link?)'
    ]
    (tmp_path / 'gone.yaml').unlink()
    source = PolicySource(tmp_path, providers={'webhook'}, check_every=0)
    (tmp_path / 'gone.yaml').symlink_to(tmp_path / 'nowhere')
    for _ in range(20):
        source()
    assert source().version


def test_a_rejection_logs_the_first_problems_and_how_many(tmp_path):
    """A file with 5,000 problems is one ``policy.rejected`` line naming the first of them and the count, not a
    line of every problem (megabytes, at every check, in the operator's log); ``jit policy validate`` lists all."""
    (tmp_path / 'p.yaml').write_text(GOOD)
    source = PolicySource(tmp_path, providers={'webhook'}, check_every=3600)
    touch(tmp_path / 'p.yaml', GOOD + ''.join(f'    k{i}: 1\n' for i in range(5000)))
    with capture_logs() as logs:
        assert source.check() is False
    [line] = [entry for entry in logs if entry['event'] == 'policy.rejected']
    assert line['problem_count'] == 5000 and len(line['problems']) == policy_source.LOGGED_PROBLEMS
    assert line['problems'][0].startswith(f'{tmp_path}/p.yaml:6:5: unknown key `k0`'), line['problems'][0]
