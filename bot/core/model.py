"""The things jit talks about: who asks (``Principal``), what they ask for (``AccessRequest``),
its ``RequestStatus``, the approvals it collected, and the audit events it leaves.

Requests are frozen; a change makes a new one (``dataclasses.replace``) so that a transition is
a pure function from the old request to the new one, and the store can apply it atomically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bot.core.characters import control_in
from bot.core.errors import UsageError

#: The longest reason jit takes, the same on every surface (``/jit request`` and ``extend``, the request form,
#: the pipeline API): an approver reads all of it, and every message shows all of it.
MAX_REASON = 1000


def bounded_reason(reason: str) -> str:
    """``reason`` when it is at most :data:`MAX_REASON` characters and holds no control character but tabs and
    line breaks; else a refusal that says why. A reason reaches terminals and CI logs (``jit audit``), where
    ``ESC [2K`` erases the line around it."""
    if len(reason) > MAX_REASON:
        raise UsageError(f'The reason is {len(reason):,} characters long; at most {MAX_REASON:,} are taken. '
                         'Shorten it (a link can hold the rest).')  # fmt: skip
    if (control := control_in(reason)) is not None:
        raise UsageError(f'The reason holds a control character ({control}); write it as plain text.')
    return reason


class AuditName(StrEnum):
    """What an audit event says happened (its ``event``): the names the trail uses, and only those."""

    REQUEST_CREATED = 'request.created'
    REQUEST_APPROVED = 'request.approved'
    REQUEST_DENIED = 'request.denied'
    REQUEST_EXPIRED = 'request.expired'
    REQUEST_CANCELLED = 'request.cancelled'
    GRANT_STARTED = 'grant.started'
    GRANT_ACTIVE = 'grant.active'
    GRANT_FAILED = 'grant.failed'
    GRANT_EXTENDED = 'grant.extended'
    GRANT_REVOKED = 'grant.revoked'
    GRANT_REVOKE_FAILED = 'grant.revoke_failed'
    POLICY_LOADED = 'policy.loaded'
    SSH_KEY_REGISTERED = 'ssh_key.registered'
    BREAKGLASS_USED = 'breakglass.used'
    #: An approval email or Teams card could not be delivered (``detail``: channel, to, attempts, error, final).
    DELIVERY_FAILED = 'delivery.failed'


class RequestStatus(StrEnum):
    """Where a request is in its life (see ``docs`` and ``bot.core.transitions``)."""

    PENDING = 'pending'
    APPROVED = 'approved'
    DENIED = 'denied'
    EXPIRED = 'expired'
    CANCELLED = 'cancelled'
    GRANTING = 'granting'
    ACTIVE = 'active'
    REVOKE_FAILED = 'revoke_failed'  # still granted: the revoke keeps failing, and keeps being retried
    REVOKED = 'revoked'
    FAILED = 'failed'


#: States in which the access exists at the provider (jit's record of it).
LIVE_STATUSES = frozenset({RequestStatus.ACTIVE, RequestStatus.REVOKE_FAILED})

#: States after which nothing more happens to a request.
FINAL_STATUSES = frozenset(
    {RequestStatus.DENIED, RequestStatus.EXPIRED, RequestStatus.CANCELLED, RequestStatus.REVOKED, RequestStatus.FAILED}
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Someone who asks or decides: a Slack user (ID, email, team) or a pipeline (``pipeline:NAME``).

    The Slack user ID from a verified request is the identity; the email (from ``users.info``)
    links it to policy groups. Comparisons go through :meth:`ids`, so the same person is the
    same whether a policy names them by email or by user ID.
    """

    slack_id: str | None = None
    email: str | None = None
    team_id: str | None = None
    pipeline: str | None = None
    name: str | None = None

    def ids(self) -> frozenset[str]:
        """Every identifier that names this principal in a policy (emails lower-cased)."""
        out = set()
        if self.slack_id:
            out.add(self.slack_id)
        if self.email:
            out.add(self.email.lower())
        if self.pipeline:
            out.add(f'pipeline:{self.pipeline}')
        return frozenset(out)

    def same_as(self, other: Principal) -> bool:
        """True when both name the same person (by user ID or by email)."""
        return bool(self.ids() & other.ids())

    @property
    def access_key(self) -> str:
        """Who holds an access, for everything keyed by person: the email (one person with several Slack IDs holds
        one access), else the Slack user ID, else ``pipeline:NAME`` (never taken for a person's ID)."""
        return (self.email or '').lower() or self.slack_id or (f'pipeline:{self.pipeline}' if self.pipeline else '?')

    @property
    def owner_key(self) -> str:
        """The key of this principal's own list of requests: the Slack user ID, or ``pipeline:NAME``."""
        return self.slack_id or (f'pipeline:{self.pipeline}' if self.pipeline else '')

    @property
    def label(self) -> str:
        """How messages name this principal: a Slack mention, or the pipeline name."""
        if self.slack_id:
            return f'<@{self.slack_id}>'
        if self.pipeline:
            return f'pipeline:{self.pipeline}'
        return self.email or 'someone'

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Principal:
        return cls(**{f.name: data.get(f.name) for f in dataclasses.fields(cls)})


@dataclass(frozen=True, slots=True)
class Approval:
    """One approver's yes, for one step of the rule."""

    by: Principal
    step: int
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {'by': self.by.to_dict(), 'step': self.step, 'at': self.at}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Approval:
        return cls(by=Principal.from_dict(data['by']), step=int(data['step']), at=float(data['at']))


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """A request for access, from filing to revoke. Times are Unix seconds (UTC)."""

    id: str
    requester: Principal
    resource: str
    role: str
    duration: int
    reason: str
    rule: str
    policy_version: str
    created_at: float
    status: RequestStatus = RequestStatus.PENDING
    ticket: str | None = None
    trigger: str = 'slack'
    step: int = 0
    approvals: tuple[Approval, ...] = ()
    decided_by: Principal | None = None
    deny_reason: str | None = None
    granted_at: float | None = None
    expires_at: float | None = None
    ended_at: float | None = None
    error: str | None = None
    attempts: int = 0
    grant_deadline: float | None = None
    #: When an undecided request expires (the rule's ``pending_timeout``), or never.
    pending_until: float | None = None
    #: The digest the approval bound to (see :meth:`digest`); the worker grants only if it still matches.
    approved_digest: str | None = None
    #: For an extension: the request whose grant it extends (its ``duration`` is the extra time).
    extends: str | None = None
    #: For a grant: the approved extensions applied to it (each ends when the grant does).
    extensions: tuple[str, ...] = ()
    #: The policy's reason for its decision, as `jit policy explain` prints it.
    decision: str = ''
    #: A pipeline's X25519 public key (base64url): the access details are sealed to it, so that only the
    #: pipeline that asked can read them (see ``bot.sealed_box``). Public, so storing it is safe.
    recipient_key: str | None = None
    #: What a pipeline said it is doing (``event``, ``branch``...): rules with a pipeline-event trigger
    #: matched it when filing, and the worker's re-check matches it again.
    context: dict[str, str] | None = field(default=None, hash=False)
    #: An end asked for before the expiry (``{at, actor, why}``: release, admin revoke, idle). Set once, by the
    #: first to ask; it wins over any later extension (see ``transitions.extend``).
    ending: dict[str, Any] | None = field(default=None, hash=False)
    #: What the grant was made with (``{provider, settings, params}``, settings as the policy wrote them, so
    #: ``env:`` references stay unresolved): recorded before the first provider call, and what every revoke,
    #: expiry push and idle check of this grant uses, whatever the policy says by then.
    granted_with: dict[str, Any] | None = field(default=None, hash=False)

    def warning_at(self) -> float | None:
        """When to warn that the grant ends: 10 minutes before, or a quarter of the grant for short ones."""
        if self.expires_at is None or self.granted_at is None:
            return None
        return self.expires_at - min(600.0, (self.expires_at - self.granted_at) / 4)

    def digest(self) -> str:
        """What an approval binds to: a worker grants only if this still matches."""
        basis = [self.requester.slack_id, self.requester.email, self.requester.pipeline,
                 self.resource, self.role, self.duration, self.rule, self.policy_version]  # fmt: skip
        return hashlib.sha256(json.dumps(basis).encode()).hexdigest()[:16]

    def summary(self) -> dict[str, Any]:
        """The request as the audit trail records it (no secrets, ever)."""
        out = {
            'id': self.id, 'requester': self.requester.to_dict(), 'resource': self.resource, 'role': self.role,
            'duration': self.duration, 'reason': self.reason, 'ticket': self.ticket,
        }  # fmt: skip
        if self.context:
            out['context'] = dict(self.context)
        return out

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data['requester'] = self.requester.to_dict()
        data['decided_by'] = self.decided_by.to_dict() if self.decided_by else None
        data['approvals'] = [a.to_dict() for a in self.approvals]
        data['extensions'] = list(self.extensions)
        data['status'] = str(self.status)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(',', ':'))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccessRequest:
        data = dict(data)
        data['requester'] = Principal.from_dict(data['requester'])
        data['decided_by'] = Principal.from_dict(data['decided_by']) if data.get('decided_by') else None
        data['approvals'] = tuple(Approval.from_dict(a) for a in data.get('approvals') or ())
        data['extensions'] = tuple(data.get('extensions') or ())
        data['status'] = RequestStatus(data['status'])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, text: str | bytes) -> AccessRequest:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One line of the audit trail, before the store gives it ``seq``, ``time`` and its hash."""

    event: str
    actor: str
    request: dict[str, Any] | None = None
    rule: str | None = None
    policy_version: str | None = None
    outcome: str | None = None
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def about(cls, request: AccessRequest, name: str, actor: Principal | str, **fields: Any) -> AuditEvent:
        """An event about ``request``: its summary, rule and policy version, and who acted (a person by Slack ID).

        A person other than the requester (an approver, an admin) is named by Slack ID as ``actor`` and, when
        known, by email and name in ``detail.actor_email`` and ``detail.actor_name``: the requester's own are in
        ``request.requester``, and without these an approver who never filed a request would be a bare Slack ID
        in every report (:class:`bot.audit.identities.Identities`).
        """
        who = actor if isinstance(actor, str) else (actor.slack_id or actor.email or actor.label)
        if isinstance(actor, Principal) and actor.slack_id and not actor.same_as(request.requester):
            known = {'actor_email': actor.email, 'actor_name': actor.name}
            fields['detail'] = {**{k: v for k, v in known.items() if v}, **(fields.get('detail') or {})}
        return cls(event=name, actor=who, request=request.summary(), rule=request.rule,
                   policy_version=request.policy_version, **fields)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if not data['detail']:
            del data['detail']
        return data


def chain_hash(record: dict[str, Any], prev_hash: str) -> str:
    """SHA-256 over the canonical JSON of an audit record (without its own ``hash``) and the previous hash."""
    body = {k: v for k, v in record.items() if k != 'hash'}
    body['prev_hash'] = prev_hash
    canonical = json.dumps(body, sort_keys=True, separators=(',', ':'), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


#: The hash that the first event of a trail chains to.
GENESIS_HASH = '0' * 64
