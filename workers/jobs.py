"""RQ job entry points. Each takes an ID, re-reads the state, and is safe to run twice.

Enqueued by dotted path from ``bot.adapters.rq_queue``; ``deps`` is for tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

from workers.runtime import WorkerDeps, current

log = structlog.get_logger(__name__)


@contextmanager
def _job_context(**keys: Any) -> Iterator[None]:
    """This job's log context, and nothing else's: RQ's SimpleWorker runs every job in one thread, so what a job
    binds is cleared when it ends (also when it raises), and nothing an earlier job bound reaches its lines."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(**keys)
    try:
        yield
    finally:
        structlog.contextvars.clear_contextvars()


def grant_access(request_id: str, *, deps: WorkerDeps | None = None) -> str:
    """Grant an approved request at its provider (retries itself with backoff on transient errors)."""
    with _job_context(request_id=request_id, job='grant'):
        outcome = (deps or current()).grant.execute(request_id)
        log.info('job.grant', outcome=outcome)
        return str(outcome)  # RQ keeps the result: a plain string, readable without jit's classes


def revoke_access(request_id: str, *, deps: WorkerDeps | None = None) -> str:
    """Revoke a grant whose time is up (scheduled at ``expires_at``; the sweeper backs it up)."""
    with _job_context(request_id=request_id, job='revoke'):
        outcome = (deps or current()).revoke.execute(request_id)
        log.info('job.revoke', outcome=outcome)
        return str(outcome)


def push_expiry(request_id: str, attempt: int = 0, *, deps: WorkerDeps | None = None) -> str:
    """An extended grant's new end, pushed to the provider's own expiry (where it keeps one)."""
    with _job_context(request_id=request_id, job='push_expiry'):
        outcome = (deps or current()).grant.push_expiry(request_id, attempt=attempt)
        log.info('job.push_expiry', outcome=outcome)
        return str(outcome)


def warn_expiry(request_id: str, *, deps: WorkerDeps | None = None) -> None:
    """DM the grantee that the grant ends soon, with Extend and Release buttons (skipped if extended since)."""
    with _job_context(request_id=request_id, job='warn_expiry'):
        (deps or current()).notifier.warn_expiry(request_id)


def remind_approvers(request_id: str, number: int, *, deps: WorkerDeps | None = None) -> None:
    """Remind the current step's approvers that a request is waiting for them."""
    with _job_context(request_id=request_id, job='remind'):
        (deps or current()).notifier.remind(request_id, number)


def notify(seq: int, *, deps: WorkerDeps | None = None) -> None:
    """Show audit event ``seq`` in Slack: approval DMs and their updates, requester DMs, audit channel.

    Nothing queues it any more (the notify follower reads the audit stream itself); kept so that jobs an
    earlier version queued before an upgrade still run.
    """
    with _job_context(audit_seq=seq, job='notify'):
        (deps or current()).notifier.handle(seq)
