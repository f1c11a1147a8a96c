"""``revoke_on_idle``: a grant nobody has used for the rule's window ends early.

Run by the sweeper every ``JIT_IDLE_INTERVAL``. It asks the provider when the grant was last in use
(``last_used``: PostgreSQL sees the role's sessions; providers that cannot tell are skipped), keeps the
latest sighting in the store (a provider may only see the present, not the past), and when the grant
has been idle for the window since it was granted or last seen, ends it the way a release does:
the revoke runs through the provider first and the audit event says ``idle``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import structlog

from bot.core.durations import format_duration
from bot.core.errors import ProviderError
from bot.core.model import AccessRequest
from bot.core.policy import Policy
from bot.core.ports import Clock, GrantIndex, JobQueue, Provider, Requests, SeesUse
from bot.usecases.target import Target


class IdleStore(Requests, GrantIndex, Protocol):
    """What the idle check touches: the live grants, when each was last seen in use, their end."""


log = structlog.get_logger(__name__)

#: ``revoke_on_idle: true`` and a provider with no ``idle_window`` of its own.
DEFAULT_IDLE_WINDOW = 15 * 60


class RevokeIdle:
    """End grants that went unused for their rule's ``revoke_on_idle`` window."""

    def __init__(
        self, *, store: IdleStore, queue: JobQueue, policy: Callable[[], Policy], clock: Clock,
        provider: Callable[[str], Provider],
    ) -> None:  # fmt: skip
        self.store, self.queue, self.policy, self.clock, self.provider = store, queue, policy, clock, provider

    def check_once(self) -> list[str]:
        """One pass over the active grants; returns the IDs ended for idleness."""
        policy = self.policy()
        ended = []
        for request in self.store.live_grants():
            window = self._window(policy, request)
            if window and self._idle_for(policy, request) >= window:
                why = f'idle for {format_duration(window)}'
                if self.store.mark_end(request.id, at=self.clock.now(), actor='jit', why=why):
                    self.queue.enqueue_revoke_now(request.id)
                    log.info('grant.idle', request_id=request.id, window=window)
                    ended.append(request.id)
        return ended

    def _window(self, policy: Policy, request: AccessRequest) -> int | None:
        rule = policy.rule_named(request.rule)
        if rule is None or not rule.revoke_on_idle or request.extends:
            return None
        try:
            target = Target.of(request, policy)
        except ProviderError:
            return None
        if target is None:
            return None
        provider = self.provider(target.provider)
        if not isinstance(provider, SeesUse):
            return None
        if rule.revoke_on_idle is True:
            return int(getattr(provider, 'idle_window', DEFAULT_IDLE_WINDOW))
        return int(rule.revoke_on_idle)

    def _idle_for(self, policy: Policy, request: AccessRequest) -> float:
        """Seconds since the grant was granted or last seen in use; 0 when the provider cannot tell now."""
        try:
            target = Target.of(request, policy)  # where the grant was made, as its revoke will use
            assert target is not None  # _window found it
            provider = self.provider(target.provider)
            if not isinstance(provider, SeesUse):
                return 0.0  # the policy moved it to a provider that cannot tell: unknown is not idle
            seen = provider.last_used(request, settings=dict(target.settings), params=dict(target.params))
        except ProviderError as exc:
            log.warning('grant.idle_check_failed', request_id=request.id, error=str(exc))
            return 0.0  # unknown is not idle
        last = max(request.granted_at or 0.0, self.store.note_seen(request.id, seen or 0.0))
        return self.clock.now() - last
