"""Revoking: at the provider first, then the state; a failure is retried until it succeeds.

Reached two ways, both idempotent: the revoker of every worker, which claims grants from the due
index as they fall due (``workers/revoker.py``), and the job a release or an admin revoke queues at once
(its end is also in the due index, so a lost job loses nothing). A lease keeps two of them from calling the
provider at the same moment.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import structlog

from bot.core import transitions
from bot.core.errors import InvalidTransition, ProviderError
from bot.core.model import LIVE_STATUSES, AccessRequest, AuditEvent, AuditName, RequestStatus
from bot.core.policy import Policy
from bot.core.ports import (
    NO_METER,
    AuditLog,
    Clock,
    GrantIndex,
    JobQueue,
    Leases,
    Meter,
    Provider,
    Requests,
    shares_grants,
)
from bot.usecases.grant_access import GRANT_LEASE
from bot.usecases.lease import access_turn, backoff, held_lease
from bot.usecases.outcomes import RevokeOutcome
from bot.usecases.target import Target


class RevokeStore(Requests, AuditLog, GrantIndex, Leases, Protocol):
    """What revoking touches: the request and the others holding the same access, the revoke index, alerts,
    and the provider turn (a lease)."""


log = structlog.get_logger(__name__)
S = RequestStatus

#: A revoke that starts a little early (a job from an older jit, scheduled by RQ in whole seconds) waits
#: that out; one that is far too early is a leftover from before an extension, and skips.
EARLY_TOLERANCE = 2.0
#: After this many failed revokes (about a minute of backoff) the grant is `revoke_failed` and the admins
#: are alerted; the retries go on.
ALERT_AFTER_FAILURES = 8
#: Revoke retries back off to at most this: once the provider is back, a revoke lands within it.
REVOKE_BACKOFF_CAP = 15.0
#: The revoke lease lapses this long after its worker stops renewing it (killed, or hung).
REVOKE_LEASE = 10.0


class RevokeAccess:
    """End one grant at its provider, then record it."""

    def __init__(
        self, *, store: RevokeStore, queue: JobQueue, policy: Callable[[], Policy], clock: Clock,
        provider: Callable[[str], Provider], sleep: Callable[[float], None] = time.sleep, meter: Meter = NO_METER,
    ) -> None:  # fmt: skip
        self.store, self.queue, self.policy, self.clock, self.provider = store, queue, policy, clock, provider
        self.sleep, self.meter = sleep, meter

    def execute(self, request_id: str, *, early_ok: bool = False) -> RevokeOutcome:
        """Revoke ``request_id`` if its time has come. Returns what happened, for the log."""
        with held_lease(self.store, f'revoke:{request_id}', REVOKE_LEASE) as mine:
            if not mine:
                return RevokeOutcome.BUSY
            request, indexed = self.store.get_with_due(request_id)
            if request is not None and request.status is S.GRANTING:
                # Past its deadline and still granting: undo it, but never while an attempt is live.
                with held_lease(self.store, f'grant:{request_id}', GRANT_LEASE) as idle:
                    if not idle:
                        return RevokeOutcome.BUSY
                    request, indexed = self.store.get_with_due(request_id)  # as the last attempt left it
                    return self._revoke(request_id, request, indexed, early_ok)
            return self._revoke(request_id, request, indexed, early_ok)

    def _revoke(
        self, request_id: str, request: AccessRequest | None, indexed: float | None, early_ok: bool
    ) -> RevokeOutcome:
        now = self.clock.now()
        if request is None or request.status not in (*LIVE_STATUSES, S.GRANTING, S.FAILED):
            self.store.clear_due(request_id)
            return RevokeOutcome.NOTHING_TO_REVOKE
        due = request.expires_at if request.status in LIVE_STATUSES else request.grant_deadline
        if request.status is S.FAILED:
            due = now
        if due is not None and indexed is not None and indexed < due:
            due = indexed  # brought forward: released by the grantee or revoked by an admin
        if due is not None and due > now and not early_ok:
            if due - now > EARLY_TOLERANCE:
                return RevokeOutcome.NOT_DUE  # a job from before an extension: the new one will come
            self.sleep(due - now)
        if request.extends and request.status is S.ACTIVE:
            # An extension holds nothing at the provider: revoking the grant it extends ends the access.
            self._transition(request_id, lambda r: transitions.revoke(r, now=self.clock.now(), why='extension ended'))
            self.meter.revoked(self._provider_label(request), RevokeOutcome.REVOKED, self.clock.now() - (due or now))
            return RevokeOutcome.REVOKED
        # What the grant was made with, not what the policy says now (see bot.usecases.target).
        try:
            target = Target.of(request, self.policy())
        except ProviderError as exc:
            return self._failed(request, exc.user_message)
        if target is None:
            return self._failed(request, f'resource `{request.resource}` is no longer in the policy')
        provider = self.provider(target.provider)
        kept_for: list[str] = []
        try:
            with access_turn(self.store, provider, target.settings, request, ttl=REVOKE_LEASE, wait=2.0) as mine:
                if not mine:
                    return RevokeOutcome.BUSY  # a grant or revoke of the same shared access is running: next sweep
                if shares_grants(provider, target.settings):
                    kept_for = sorted(self.store.holders(request) - {request.id})
                if not kept_for:
                    provider.revoke(request, settings=dict(target.settings), params=dict(target.params))
        except ProviderError as exc:
            return self._failed(request, f'{target.provider}: {exc.user_message}')
        except Exception as exc:  # a provider bug: still a revoke that did not happen, so retried and alerted
            log.exception('grant.revoke_crashed', request_id=request_id, provider=target.provider)
            return self._failed(request, f'{target.provider}: unexpected {type(exc).__name__}')
        if kept_for:
            log.info('grant.kept_for_overlap', request_id=request_id, kept_for=kept_for)
        if request.status not in LIVE_STATUSES:
            # A grant that never finished (worker gone) or failed half-way: cleaned up, and closed.
            self.store.clear_due(request_id)
            if request.status is S.GRANTING:
                self._transition(
                    request_id,
                    lambda r: transitions.fail(
                        r, error='the grant did not finish in time; revoked to be safe', now=self.clock.now()
                    ),
                )
            self.meter.revoked(target.provider, RevokeOutcome.CLEANED_UP)
            return RevokeOutcome.CLEANED_UP
        end = request.ending or {}  # as read above: the first end asked for stays, and no end is unasked
        actor, why = str(end.get('actor', 'jit')), str(end.get('why', 'expired'))
        self._transition(request_id, lambda r: transitions.revoke(r, now=self.clock.now(), actor=actor, why=why,
                                                                  kept_for=kept_for))  # fmt: skip
        for extension in request.extensions:
            # Applied extensions hold nothing of their own: they end with the grant, not at its former end.
            self.store.mark_end(extension, at=self.clock.now(), actor=str(actor), why=f'{request_id} ended')
        lateness = self.clock.now() - (due or now)
        log.info('grant.revoked', request_id=request_id, lateness=round(lateness, 3))
        self.meter.revoked(target.provider, RevokeOutcome.REVOKED, lateness)
        return RevokeOutcome.REVOKED

    def _transition(self, request_id: str, step: Callable[[AccessRequest], tuple[AccessRequest, AuditEvent]]) -> None:
        try:
            self.store.transition(request_id, step)
        except InvalidTransition:
            return

    def _provider_label(self, request: AccessRequest) -> str:
        """The provider a grant was made with, for metrics (the policy's, for one that recorded none)."""
        recorded = (request.granted_with or {}).get('provider')
        resource = self.policy().resources.get(request.resource)
        return str(recorded or (resource.provider if resource else '-'))

    def _failed(self, request: AccessRequest, error: str) -> RevokeOutcome:
        self.meter.revoked(self._provider_label(request), RevokeOutcome.FAILED_WILL_RETRY)
        failures = self.store.note_revoke_failure(request.id)
        delay = backoff(failures, cap=REVOKE_BACKOFF_CAP)
        self.store.postpone_revoke(request.id, self.clock.now() + delay)
        log.error(
            'grant.revoke_failed', request_id=request.id, error=error, failures=failures, retry_in=round(delay, 1)
        )
        if failures >= ALERT_AFTER_FAILURES and request.status is S.ACTIVE:
            self._transition(request.id, lambda r: transitions.revoke_failed(r, error=error, failures=failures))
        elif failures == ALERT_AFTER_FAILURES:  # a clean-up of a half-made grant: no grant to mark, still loud
            self.store.record(AuditEvent.about(request, AuditName.GRANT_REVOKE_FAILED, 'jit', outcome='retrying',
                                               error=error))  # fmt: skip
        return RevokeOutcome.FAILED_WILL_RETRY
