"""Log lines name the request they are about: each RQ job binds its own context and leaves none behind.

RQ's ``SimpleWorker`` runs every job in the same thread, one after another, so a context bound with
structlog's contextvars and never cleared would follow the next job's lines (a notify job's lines carrying
the revoke's request ID) and the worker's own ("warm shut down" with a job's ID).
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import structlog

from tests.support.log_capture import capture_logs
from workers import jobs

log = structlog.get_logger('test')


def deps():
    def execute(request_id, **_):
        log.info('inside', request_id_seen=request_id)
        return 'done'

    notifier = SimpleNamespace(handle=lambda seq: log.info('notify.inside'), warn_expiry=lambda rid: None,
                               remind=lambda rid, n: None)  # fmt: skip
    return SimpleNamespace(revoke=SimpleNamespace(execute=execute), grant=SimpleNamespace(execute=execute),
                           notifier=notifier)  # fmt: skip


def test_each_job_logs_its_own_request_and_leaves_no_context_behind():
    """A revoke of r-1, then a notify, then a grant of r-2, then a line outside any job."""
    d = deps()
    with capture_logs() as lines:
        jobs.revoke_access('r-1', deps=d)
        jobs.notify(7, deps=d)
        jobs.grant_access('r-2', deps=d)
        log.info('worker.idle')
    by_event = {(line['event'], line.get('request_id')): line for line in lines}
    assert ('inside', 'r-1') in by_event and ('inside', 'r-2') in by_event
    notify = next(line for line in lines if line['event'] == 'notify.inside')
    assert 'request_id' not in notify and notify['job'] == 'notify' and notify['audit_seq'] == 7
    idle = next(line for line in lines if line['event'] == 'worker.idle')
    assert 'request_id' not in idle and 'job' not in idle and 'audit_seq' not in idle
    grant_lines = [line for line in lines if line.get('job') == 'grant']
    assert grant_lines and all(line['request_id'] == 'r-2' for line in grant_lines)


def test_a_failing_job_leaves_no_context_behind():
    """A job that raises (RQ records the failure) still clears what it bound."""

    def boom(request_id, **_):
        raise RuntimeError('provider bug')

    d = SimpleNamespace(revoke=SimpleNamespace(execute=boom))
    with capture_logs() as lines:
        with contextlib.suppress(RuntimeError):
            jobs.revoke_access('r-9', deps=d)
        log.info('after')
    assert 'request_id' not in next(line for line in lines if line['event'] == 'after')
