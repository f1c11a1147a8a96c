"""The ports: what the use cases need from the world, as Protocols.

``bot.adapters`` implements them over Redis, RQ and Slack; ``tests/support/memory_store.py`` implements the
store in memory, and ``tests/contract/`` holds both to one contract. A use case takes these through its
constructor and never imports an adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from bot.core.model import AccessRequest, AuditEvent, Principal

Transition = Callable[[AccessRequest], tuple[AccessRequest, AuditEvent]]


class Clock(Protocol):
    def now(self) -> float:
        """Unix time in seconds."""
        ...


class Requests(Protocol):
    """Requests, each write one atomic step with its audit event."""

    def create(self, request: AccessRequest, event: AuditEvent) -> int:
        """Store a new request with its ``request.created`` event; returns the event's ``seq``.

        Raises:
            ValueError: a request with this ID exists; nothing is written.
        """
        ...

    def transition(self, request_id: str, step: Transition) -> tuple[AccessRequest, int]:
        """Apply ``step`` to the current request atomically; returns the new request and the event's ``seq``.

        Raises:
            RequestNotFound: no such request.
            InvalidTransition / NotPermitted: whatever ``step`` raises; nothing is written.
        """
        ...

    def get(self, request_id: str) -> AccessRequest | None: ...

    def for_user(self, slack_id: str, limit: int = 50) -> list[AccessRequest]:
        """A user's requests (``Principal.owner_key``), newest first."""
        ...

    def pending(self, limit: int = 200) -> list[AccessRequest]:
        """Requests waiting for a decision, oldest first."""
        ...

    def mark_end(self, request_id: str, *, at: float, actor: str, why: str) -> bool:
        """Bring a grant's end forward (release, admin revoke); False when nothing is left to end.

        The first end asked for stays on the request (``ending``); the revoke falls due at the earliest.
        """
        ...

    def holders(self, request: AccessRequest) -> set[str]:
        """IDs of the requests granting or holding the same access to the same person (for shared grants)."""
        ...


class AuditLog(Protocol):
    """The hash-chained audit trail, read by ``seq``."""

    def record(self, event: AuditEvent) -> int:
        """Append an audit event that changes no request (an alert); returns its ``seq``."""
        ...

    def audit_event(self, seq: int) -> dict[str, Any] | None:
        """The event as stored: ``seq``, ``time``, the event's fields, ``prev_hash`` and ``hash``."""
        ...


class GrantIndex(Protocol):
    """When each request needs looking at again: revokes due, stalled grants, expired approvals, use seen.

    The store keeps these indexes in the same atomic step as the request; the sweeper and the revoker read them.
    """

    def due_for_revoke(self, now: float, limit: int = 100) -> list[str]:
        """IDs of grants whose revoke is due (expired, or a grant whose worker never finished), earliest first."""
        ...

    def due_at(self, request_id: str) -> float | None:
        """When this grant's revoke is due (None: nothing to revoke)."""
        ...

    def get_with_due(self, request_id: str) -> tuple[AccessRequest | None, float | None]:
        """The request and when its revoke is due, read together (what every revoke starts from)."""
        ...

    def postpone_revoke(self, request_id: str, until: float) -> None:
        """Push a failing revoke's next attempt to ``until`` (backoff); it stays due until revoked."""
        ...

    def clear_due(self, request_id: str) -> None:
        """Nothing is left to revoke for this request."""
        ...

    def note_revoke_failure(self, request_id: str) -> int:
        """Count one more failed revoke of this grant; returns the count (cleared when the grant is revoked)."""
        ...

    def pending_expired(self, now: float, limit: int = 100) -> list[str]:
        """IDs of pending requests past their ``pending_timeout``."""
        ...

    def stalled_grants(self, now: float, limit: int = 100) -> list[str]:
        """IDs of approved requests whose grant should have started, or finished, by ``now``."""
        ...

    def watch(self, request_id: str, at: float) -> None:
        """Check on this approved (or granting) request again at ``at``; nothing for any other request."""
        ...

    def unwatch(self, request_id: str) -> None: ...

    def live_grants(self, limit: int = 10_000) -> list[AccessRequest]:
        """Every active grant not yet due (for the idle check)."""
        ...

    def note_seen(self, request_id: str, at: float) -> float:
        """Remember that the grant was in use at ``at``; returns the latest time it was seen in use."""
        ...


class Leases(Protocol):
    """Short locks that lapse by themselves, held per process (a lapsed lease cannot be renewed or freed)."""

    def lease(self, name: str, seconds: float) -> bool:
        """Take a short lock that lapses by itself; False when someone else holds it."""
        ...

    def renew_lease(self, name: str, seconds: float) -> bool:
        """Keep a lease this process holds ``seconds`` longer; False when it had lapsed."""
        ...

    def release_lease(self, name: str) -> None: ...


class PolicyInForce(Protocol):
    """Which policy version is in force, as the audit trail last recorded it (one value shared by every process)."""

    def swap_policy_in_force(self, version: str) -> bool:
        """Make ``version`` the recorded one in one step; True when it was another (or none), False when it was
        already ``version``: of the processes that notice one change, exactly one hears True."""
        ...


class Limits(Protocol):
    """Sliding-window counters (requests per hour, ssh keys per day)."""

    def take_slot(self, name: str, *, now: float, window: float, limit: int) -> float | None:
        """Count one use of ``name`` in a sliding window, atomically; None when it was under ``limit``,
        else the seconds until a use drops out of the window (nothing is counted then)."""
        ...


class UserKeys(Protocol):
    """The OpenSSH public keys users registered (``/jit ssh-key``), for the ssh provider."""

    def ssh_key(self, slack_id: str) -> str | None: ...

    def set_ssh_key(self, slack_id: str, key: str) -> None: ...


class RequestStore(Requests, AuditLog, GrantIndex, Leases, Limits, UserKeys, PolicyInForce, Protocol):
    """All of the store: what the wiring builds (``RedisStore``; in tests also ``MemoryStore``).

    A use case names the parts it uses (a Protocol of its own made of the ones above), so a reader sees what
    it touches and a test can hand it a smaller stand-in.
    """


class JobQueue(Protocol):
    """Background work: grants and revokes, and Slack notifications (on a separate queue)."""

    def enqueue_grant(self, request_id: str, *, delay: float = 0, attempt: int = 0) -> None:
        """Queue a grant; a retry (``attempt`` > 0) runs after ``delay`` seconds under its own job ID."""
        ...

    def enqueue_revoke_now(self, request_id: str) -> None:
        """Revoke as soon as a worker is free (release, admin revoke)."""
        ...

    def enqueue_push_expiry(self, request_id: str, *, delay: float = 0, attempt: int = 0) -> None:
        """Move an extended grant's expiry at the provider too (``VALID UNTIL``, a new certificate...)."""
        ...


class Provider(Protocol):
    """Grants and revokes one kind of access. Both are idempotent per request ID.

    Raises TransientProviderError (retried with backoff) or PermanentProviderError (no retry).
    """

    def grant(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """Grant; returns details for the requester (shown once, never stored)."""
        ...

    def revoke(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> None: ...


# What a provider may do besides grant and revoke, each a Protocol of its own, checked with isinstance.


#: A grant is made before its clock starts (jit activates it once the provider confirms), so the expiry
#: pushed down at grant time is the duration from now plus this much for the activation to happen: a target
#: that keeps its own expiry ends the access at most this long after jit does. A grant confirmed later than
#: that has its target's expiry moved to jit's end at once (``GrantAccess`` queues the push).
ACTIVATION_SLACK = 30.0


@runtime_checkable
class Extends(Protocol):
    """A target that holds an expiry of its own (``VALID UNTIL``, a certificate's validity, an IAM condition)."""

    def extend(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """Move it to ``request.expires_at``; returns details for the requester (a new certificate), like grant."""
        ...


@runtime_checkable
class ListsLive(Protocol):
    """A target that can tell what jit granted there (for the reconciler)."""

    def list_live(self, resource: str, *, settings: dict[str, Any]) -> list[tuple[str, str]] | None:
        """``(request_id, role)`` of every grant jit made at ``resource``; None when these settings cannot tell."""
        ...


@runtime_checkable
class SeesUse(Protocol):
    """A target that can tell when a grant was last used (for ``revoke_on_idle``)."""

    def last_used(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> float | None:
        """When the grant was last seen in use (a Unix time), or None when it was not."""
        ...


def shares_grants(provider: object, settings: dict[str, Any]) -> bool:
    """Whether overlapping grants of one access land on one shared object at the target (a group membership).

    A provider says so with ``shared_grants = True`` (``aws_iam``); a webhook whose receiver keeps one
    object per person says so with ``shared: true`` in the resource's settings. Then jit revokes at the
    provider only when the last overlapping grant ends.
    """
    return bool(getattr(provider, 'shared_grants', False) or settings.get('shared') is True)


class Directory(Protocol):
    """Who a Slack user is: ``users.info`` behind a short cache."""

    def principal(self, slack_id: str) -> Principal: ...


class Meter(Protocol):
    """What the use cases report for metrics (``bot.adapters.metrics``): counts and times, never who or which request.

    Every label is from a bounded set: a surface, an outcome, a rule or provider name from the policy.
    """

    def filed(self, surface: str, outcome: str) -> None:
        """A request asked for on ``surface`` (``slack``, ``api``): its status, or why it was refused."""
        ...

    def decided(self, rule: str, outcome: str) -> None:
        """An approver's click: ``approved``, ``pending`` (a step approved, more to come), ``denied``, ``refused``."""
        ...

    def granted(self, provider: str, outcome: str, seconds: float | None = None) -> None:
        """A grant attempt's outcome; ``seconds`` from the last approval to active, when it became active."""
        ...

    def revoked(self, provider: str, outcome: str, lateness: float | None = None) -> None:
        """A revoke attempt's outcome; ``lateness`` past the grant's end, when the access ended."""
        ...


class _NoMeter:
    """Reports nothing: what a use case measures with when none is given (tests, tools)."""

    def filed(self, surface: str, outcome: str) -> None:
        return None

    def decided(self, rule: str, outcome: str) -> None:
        return None

    def granted(self, provider: str, outcome: str, seconds: float | None = None) -> None:
        return None

    def revoked(self, provider: str, outcome: str, lateness: float | None = None) -> None:
        return None


NO_METER: Meter = _NoMeter()
