"""The reconciler: the last layer of "never lose a revoke".

It asks each provider that can tell (``list_live``) which grants jit created there - they carry the
request ID - and revokes every one that the store does not hold as active or in progress: a grant
whose record was lost (Redis flushed or restored from an old backup), or one a crash left behind.
Each orphan revoke is an audit event. Run by ``jit worker`` at start and every
``JIT_RECONCILE_INTERVAL`` seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from bot.adapters.redis_store import RedisStore
from bot.adapters.rq_queue import RQJobQueue
from bot.core.errors import ProviderError
from bot.core.model import AccessRequest, AuditEvent, Principal, RequestStatus
from bot.core.policy import Policy
from bot.core.ports import Clock, shares_grants

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
        """One pass over every resource whose provider can list; returns how many orphans were revoked."""
        revoked = 0
        policy = self.policy()
        for resource in policy.resources.values():
            try:
                provider = self.provider(resource.provider)
                lister = getattr(provider, 'list_live', None)
                live = lister(resource.name, settings=dict(resource.settings)) if lister else None
            except ProviderError as exc:
                log.warning('reconcile.list_failed', resource=resource.name, error=str(exc))
                continue
            for request_id, role in live or ():
                known = self.store.get(request_id)
                if known is not None and known.status in EXPECTED:
                    continue
                shared = known is not None and shares_grants(provider, dict(resource.settings))
                if shared and self.store.holders(known) - {request_id}:  # type: ignore[arg-type]
                    continue  # one shared object: an overlapping live grant holds it, and its revoke ends it
                revoked += self._revoke_orphan(provider, resource.name, role, request_id, known, policy)
        return revoked

    def _revoke_orphan(
        self, provider: Any, resource: str, role: str, request_id: str, known: AccessRequest | None, policy: Policy
    ) -> int:
        stub = known or AccessRequest(id=request_id, requester=Principal(), resource=resource, role=role, duration=0,
                                      reason='', rule='', policy_version=policy.version, created_at=0.0)  # fmt: skip
        res = policy.resources[resource]
        params = dict(res.roles[role].params) if role in res.roles else {}
        try:
            provider.revoke(stub, settings=dict(res.settings), params=params)
        except ProviderError as exc:
            log.error('reconcile.revoke_failed', request_id=request_id, resource=resource, error=str(exc))
            return 0
        why = 'not known to jit' if known is None else f'jit holds it as {known.status}'
        event = AuditEvent(event='grant.revoked', actor='reconciler', request=stub.summary(), rule=stub.rule or None,
                           policy_version=policy.version, outcome='revoked',
                           detail={'why': f'orphan at the provider: {why}'})  # fmt: skip
        self.queue.enqueue_notify(self.store.record(event))
        log.warning('reconcile.orphan_revoked', request_id=request_id, resource=resource, why=why)
        return 1
