"""The :class:`~bot.core.ports.JobQueue` over RQ.

Two queues, so that a slow Slack never delays access: ``jit-access`` carries grants and revokes,
``jit-notify`` carries Slack messages; ``jit worker`` listens to both, access first. Jobs take only
an ID and re-read the state (a job that runs twice, late or early changes nothing it should not).
Revokes at expiry are not jobs: the revoker of every worker reads the due index (``workers/revoker.py``);
a release or an admin revoke is also queued at once, ``end-<request id>``.
"""

from __future__ import annotations

from datetime import timedelta

import redis
from rq import Queue

ACCESS_QUEUE = 'jit-access'
NOTIFY_QUEUE = 'jit-notify'
#: A grant or revoke call that takes longer than this is cut off and retried.
JOB_TIMEOUT = 120
#: Results are not needed; failures are kept a week for the operator to read (`rq info`).
RESULT_TTL = 0
FAILURE_TTL = 7 * 86400


class RQJobQueue:
    """Enqueues ``workers.jobs`` functions by dotted path, so the bot never imports the workers."""

    def __init__(self, connection: redis.Redis) -> None:
        self.access = Queue(ACCESS_QUEUE, connection=connection, default_timeout=JOB_TIMEOUT)
        self.notify = Queue(NOTIFY_QUEUE, connection=connection, default_timeout=JOB_TIMEOUT)

    def enqueue_grant(self, request_id: str, *, delay: float = 0, attempt: int = 0) -> None:
        job_id = f'grant-{request_id}' + (f'-{attempt}' if attempt else '')
        kwargs = {'job_id': job_id, 'result_ttl': RESULT_TTL, 'failure_ttl': FAILURE_TTL}
        if delay > 0:
            self.access.enqueue_in(timedelta(seconds=delay), 'workers.jobs.grant_access', request_id, **kwargs)
        else:
            self.access.enqueue('workers.jobs.grant_access', request_id, **kwargs)

    def enqueue_reminder(self, request_id: str, number: int) -> None:
        self.notify.enqueue('workers.jobs.remind_approvers', request_id, number, result_ttl=RESULT_TTL,
                            failure_ttl=FAILURE_TTL)  # fmt: skip

    def enqueue_revoke_now(self, request_id: str) -> None:
        self.access.enqueue('workers.jobs.revoke_access', request_id, job_id=f'end-{request_id}', at_front=True,
                            result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL)  # fmt: skip

    def enqueue_push_expiry(self, request_id: str, *, delay: float = 0, attempt: int = 0) -> None:
        kwargs = {'result_ttl': RESULT_TTL, 'failure_ttl': FAILURE_TTL}
        if delay > 0:
            self.access.enqueue_in(timedelta(seconds=delay), 'workers.jobs.push_expiry', request_id, attempt, **kwargs)
        else:
            self.access.enqueue('workers.jobs.push_expiry', request_id, attempt, **kwargs)
