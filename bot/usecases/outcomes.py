"""What a worker's use case did with a request: the words of its log lines, job results and tests.

``StrEnum``s (as :class:`~bot.core.model.RequestStatus` is), so a log line or an RQ job result reads as before
(``"granted"``) while code compares against a name that cannot be misspelt.
"""

from __future__ import annotations

from enum import StrEnum


class GrantOutcome(StrEnum):
    """:meth:`GrantAccess.execute <bot.usecases.grant_access.GrantAccess.execute>` and ``recover``."""

    GRANTED = 'granted'
    EXTENDED = 'extended'  # an approved extension moved its grant's end
    RETRYING = 'retrying'  # a transient provider error: queued again after a backoff
    FAILED = 'failed'
    SKIPPED = 'skipped'  # not approved or granting (any more): nothing to grant
    BUSY = 'busy'  # another attempt holds the grant lease
    NOTHING_TO_DO = 'nothing to do'
    REQUEUED = 'requeued'  # a stalled grant, queued again by the sweeper


class ExpiryOutcome(StrEnum):
    """:meth:`GrantAccess.push_expiry <bot.usecases.grant_access.GrantAccess.push_expiry>`."""

    MOVED = 'moved'
    RETRYING = 'retrying'
    FAILED = 'failed'
    ENDING = 'ending'  # a revoke is running
    NOT_ACTIVE = 'not active'
    NOTHING_TO_MOVE = 'nothing to move'  # the target holds no expiry of its own, or this is an extension


class RevokeOutcome(StrEnum):
    """:meth:`RevokeAccess.execute <bot.usecases.revoke_access.RevokeAccess.execute>`."""

    REVOKED = 'revoked'
    CLEANED_UP = 'cleaned up'  # a failed grant's possible leftovers, revoked
    FAILED_WILL_RETRY = 'failed, will retry'
    BUSY = 'busy'  # a grant or revoke of the same access is running: the next round takes it
    NOTHING_TO_REVOKE = 'nothing to revoke'
    NOT_DUE = 'not due'  # a job from before an extension: the new end brings its own
