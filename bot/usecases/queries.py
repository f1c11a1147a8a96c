"""Read-only questions the Slack surfaces ask: my requests, and the pending ones I may decide."""

from __future__ import annotations

from bot.core.model import AccessRequest, Principal, RequestStatus
from bot.core.policy import Policy
from bot.core.ports import Requests


def mine(store: Requests, who: Principal) -> list[AccessRequest]:
    return store.for_user(who.slack_id) if who.slack_id else []


def waiting_for(store: Requests, policy: Policy, who: Principal) -> list[AccessRequest]:
    """Pending requests whose current step ``who`` may approve (never their own)."""
    return [
        r
        for r in store.pending()
        if r.status is RequestStatus.PENDING
        and not who.same_as(r.requester)
        and (rule := policy.rule_named(r.rule))
        and who.ids() & policy.step_approvers(rule, r.step)
    ]
