"""Ending things early: the grantee releases a grant, an admin revokes anyone's, the requester cancels a
pending request, and pending requests expire when nobody decided in time.

Release and admin revoke do not touch the state themselves: they bring the grant's end forward to now
(remembering who and why) and queue the revoke, which goes to the provider first and only then
records ``grant.revoked``. Because the end lives in the due-for-revoke index, the sweeper carries it
out even if the queued job is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from bot.core import transitions
from bot.core.errors import InvalidTransition, NotPermitted, RequestNotFound
from bot.core.model import LIVE_STATUSES, AccessRequest, Principal, RequestStatus
from bot.core.policy import Policy
from bot.core.ports import Clock, GrantIndex, JobQueue, Requests


class EndStore(Requests, GrantIndex, Protocol):
    """What ending grants touches: the requests, and the revoke and expiry indexes."""


S = RequestStatus


class EndAccess:
    """Release, admin revoke, cancel, and the expiry of undecided requests."""

    def __init__(self, *, store: EndStore, queue: JobQueue, policy: Callable[[], Policy], clock: Clock) -> None:
        self.store, self.queue, self.policy, self.clock = store, queue, policy, clock

    def _get(self, request_id: str) -> AccessRequest:
        request = self.store.get(request_id)
        if request is None:
            raise RequestNotFound(f'No request has the ID `{request_id}`.')
        return request

    def release(self, request_id: str, who: Principal) -> AccessRequest:
        """The grantee is done: access ends now.

        Raises:
            NotPermitted: ``who`` is not the grantee (admins use :meth:`revoke`).
            InvalidTransition: the grant is not active.
        """
        request = self._get(request_id)
        if not who.same_as(request.requester):
            raise NotPermitted('Only the grantee can release a grant (admins: `/jit revoke ID`).')
        return self._end(request, who, 'released')

    def revoke(self, request_id: str, who: Principal) -> AccessRequest:
        """An admin (policy ``admins``) ends anyone's grant now."""
        if not self.policy().is_admin(who):
            raise NotPermitted('Only admins can revoke grants (see `admins` in the policy).')
        return self._end(self._get(request_id), who, 'revoked by an admin')

    def _end(self, request: AccessRequest, who: Principal, why: str) -> AccessRequest:
        if request.extends:
            # An extension holds nothing of its own: ending it means ending the grant it extends.
            request = self._get(request.extends)
        if request.status is S.GRANTING or request.status is S.APPROVED:
            raise InvalidTransition(f'Request `{request.id}` is still being granted; try again in a moment.')
        if request.status not in LIVE_STATUSES:
            raise InvalidTransition(f'Request `{request.id}` has no active grant (it is {request.status}).')
        if request.ending:
            raise InvalidTransition(f'The grant of `{request.id}` is already ending ({request.ending.get("why")}).')
        actor = who.slack_id or who.email or who.label
        if not self.store.mark_end(request.id, at=self.clock.now(), actor=actor, why=why):
            raise InvalidTransition(f'The grant of `{request.id}` is already ending.')
        self.queue.enqueue_revoke_now(request.id)
        return request

    def cancel(self, request_id: str, who: Principal) -> AccessRequest:
        """The requester withdraws a pending request."""
        request, _ = self.store.transition(request_id, lambda r: transitions.cancel(r, who, now=self.clock.now()))
        return request

    def expire_pending(self) -> int:
        """Expire every pending request past its ``pending_timeout``; returns how many."""
        done = 0
        for request_id in self.store.pending_expired(self.clock.now()):
            try:
                self.store.transition(request_id, lambda r: transitions.expire(r, now=self.clock.now()))
            except (InvalidTransition, RequestNotFound):
                continue  # decided meanwhile: the transition took it out of the index
            done += 1
        return done
