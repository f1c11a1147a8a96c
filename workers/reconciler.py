"""The reconciler: the last layer of "never lose a revoke".

It asks each provider that can tell (``list_live``) which grants jit created there - they carry the
request ID - and revokes every one that the store does not hold as active or in progress: a grant
whose record was lost (Redis flushed or restored from an old backup), or one a crash left behind.
Each orphan revoke is an audit event.

A list is older than the records read after it: a grant that a revoker (of this worker or any other) ends
meanwhile is in the list and already revoked in the store. So a grant the records say should not be held is
an orphan only if the provider lists it again, after its record was read; else a revoke on time would be
followed by a second one and a false ``grant.revoked`` event ("orphan at the provider: jit holds it as
revoked"). Run by ``jit worker`` at start and every
``JIT_RECONCILE_INTERVAL`` seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import structlog

from bot.adapters.redis_store import RedisStore
from bot.adapters.rq_queue import RQJobQueue
from bot.core.errors import ProviderError
from bot.core.model import AccessRequest, AuditEvent, AuditName, Principal, RequestStatus
from bot.core.policy import Policy
from bot.core.ports import Clock, ListsLive, shares_grants
from bot.usecases.target import Target

log = structlog.get_logger(__name__)
#: States in which a grant at the provider is expected (granting: a worker may be on it right now).
EXPECTED = frozenset(
    {RequestStatus.ACTIVE, RequestStatus.REVOKE_FAILED, RequestStatus.GRANTING, RequestStatus.APPROVED}
)


class Reconciler:
    """Revokes grants the providers hold but jit does not know as active."""

    def __init__(
        self, *, store: RedisStore, queue: RQJobQueue, policy: Callable[[], Policy], clock: Clock,
        provider: Callable[[str], Any],
    ) -> None:  # fmt: skip
        self.store, self.queue, self.policy, self.clock, self.provider = store, queue, policy, clock, provider

    def run_once(self) -> int:
        """One pass over every target whose provider can list; returns how many orphans were revoked.

        The targets are the policy's resources and, besides, every target a live grant was made at
        (``granted_with``): after a pull request moved a resource (another webhook URL, role prefix, account),
        what the old settings created is still looked at, and its orphans still revoked there.
        """
        revoked = 0
        policy = self.policy()
        for resource_name, target in self._targets(policy):
            try:
                provider = self.provider(target.provider)
                if not isinstance(provider, ListsLive):
                    continue  # it cannot tell what it holds: nothing to compare
            except ProviderError as exc:
                log.warning('reconcile.list_failed', resource=resource_name, error=str(exc))
                continue
            except Exception as exc:  # a provider's own fault, or settings it cannot use: this resource, not all
                log.error('reconcile.list_failed', resource=resource_name, error=type(exc).__name__)
                continue
            suspects: list[tuple[str, str, AccessRequest | None]] = []
            for request_id, role in self._list(provider, resource_name, target) or ():
                known = self.store.get(request_id)
                if known is not None and known.status in EXPECTED:
                    continue
                shared = known is not None and shares_grants(provider, dict(target.settings))
                if shared and self.store.holders(known) - {request_id}:  # type: ignore[arg-type]
                    continue  # one shared object: an overlapping live grant holds it, and its revoke ends it
                suspects.append((request_id, role, known))
            if suspects:
                # The list is older than the records read after it: a grant jit revoked in between (a revoker of
                # any worker, at its due time) is in the list and ended in the store. An orphan is what the
                # provider still lists after its record was read as not holding it.
                still = {(i, r) for i, r in self._list(provider, resource_name, target) or ()}
                for request_id, role, known in suspects:
                    if (request_id, role) in still:
                        revoked += self._revoke_orphan(provider, target, resource_name, role, request_id, known,
                                                       policy)  # fmt: skip
        return revoked

    @staticmethod
    def _list(provider: ListsLive, resource: str, target: Target) -> list[tuple[str, str]] | None:
        """What ``provider`` holds at ``resource``; None (logged) when it cannot say now."""
        try:
            return provider.list_live(resource, settings=dict(target.settings))
        except ProviderError as exc:
            log.warning('reconcile.list_failed', resource=resource, error=str(exc))
        except Exception as exc:  # a provider's own fault, or settings it cannot use: this resource, not all
            log.error('reconcile.list_failed', resource=resource, error=type(exc).__name__)
        return None

    def _targets(self, policy: Policy) -> list[tuple[str, Target]]:
        found: dict[str, tuple[str, Target]] = {}

        def add(resource: str, target: Target) -> None:
            try:
                key = json.dumps([resource, target.provider, target.settings], sort_keys=True, default=str)
            except Exception as exc:  # a setting JSON cannot write (int-to-str limit, a cycle): this target only
                # Only the type: the text of an exception about settings may quote one of them.
                log.error('reconcile.target_unusable', resource=resource, error=type(exc).__name__,
                          why='a setting JSON cannot write')  # fmt: skip
                return
            found.setdefault(key, (resource, target))

        for resource in policy.resources.values():
            add(resource.name, Target(resource.provider, dict(resource.settings), {}))
        for grant in self.store.live_grants():
            if grant.granted_with and not grant.extends:
                try:
                    target = Target.of(grant, policy)
                except ProviderError as exc:
                    log.warning('reconcile.target_unusable', request_id=grant.id, error=str(exc))
                    continue
                if target is not None:
                    add(grant.resource, Target(target.provider, target.settings, {}))
        return list(found.values())

    def _revoke_orphan(
        self, provider: Any, target: Target, resource: str, role: str, request_id: str, known: AccessRequest | None,
        policy: Policy,
    ) -> int:  # fmt: skip
        stub = known or AccessRequest(id=request_id, requester=Principal(), resource=resource, role=role, duration=0,
                                      reason='', rule='', policy_version=policy.version, created_at=0.0)  # fmt: skip
        try:
            recorded = Target.of(known, policy) if known is not None and known.granted_with else None
            if recorded is not None:
                params = recorded.params
            else:
                res = policy.resources.get(resource)
                params = dict(res.roles[role].params) if res is not None and role in res.roles else {}
            provider.revoke(stub, settings=dict(target.settings), params=params)
        except ProviderError as exc:
            log.error('reconcile.revoke_failed', request_id=request_id, resource=resource, error=str(exc))
            return 0
        why = 'not known to jit' if known is None else f'jit holds it as {known.status}'
        event = AuditEvent(event=AuditName.GRANT_REVOKED, actor='reconciler', request=stub.summary(),
                           rule=stub.rule or None, policy_version=policy.version, outcome='revoked',
                           detail={'why': f'orphan at the provider: {why}'})  # fmt: skip
        self.store.record(event)
        log.warning('reconcile.orphan_revoked', request_id=request_id, resource=resource, why=why)
        return 1
