"""Where a pending request stands, as plain text for the surfaces outside Slack (email, Teams, the decision page).

Slack's version, with mentions and mrkdwn, is :func:`bot.blocks.messages.waiting_line`; this one names
approvers as the policy writes them (``security``, ``sec@example.com``) and where they are asked.
"""

from __future__ import annotations

from bot.core.model import AccessRequest, RequestStatus
from bot.core.policy import ASK_EMAIL, ASK_SLACK, Rule

#: How each channel of a rule's ``ask`` reads after the approvers' names.
CHANNEL_LABELS = {ASK_SLACK: 'Slack', ASK_EMAIL: 'email'}


def asked_in(rule: Rule) -> str:
    """``Slack, email, Teams``: where the approvers of ``rule`` are asked; empty for Slack alone (the default)."""
    if tuple(rule.ask) == (ASK_SLACK,):
        return ''
    labels = [CHANNEL_LABELS.get(a, 'Teams') for a in rule.ask]
    return ', '.join(dict.fromkeys(labels))


def approver_names(approvers: tuple[str, ...] | list[str]) -> str:
    return ', '.join(a.removeprefix('group:') for a in approvers)


def waiting_text(request: AccessRequest, rule: Rule | None) -> str:
    """``1 of 2 approved — waiting for security (Slack, email)``."""
    needed = rule.approvals_needed if rule else max(1, len(request.approvals))
    done = f'{len(request.approvals)} of {needed} approved'
    if rule is None or request.step >= len(rule.steps):
        return done
    where = asked_in(rule)
    return f'{done} — waiting for {approver_names(rule.steps[request.step].approvers)}' + (
        f' ({where})' if where else ''
    )


def decided_by(request: AccessRequest) -> str:
    who = request.decided_by
    if who is None:
        return 'the policy'
    if who.pipeline:
        return f'pipeline:{who.pipeline}'
    return who.email or who.name or who.slack_id or 'someone'


def outcome_text(request: AccessRequest) -> str:
    """How a request that is no longer pending ended, in a plain sentence (``Denied by sec@example.com: …``)."""
    status, by = request.status, decided_by(request)
    if status is RequestStatus.DENIED:
        return f'Denied by {by}' + (f': {request.deny_reason}' if request.deny_reason else '')
    if status is RequestStatus.EXPIRED:
        return 'Expired: nobody decided in time'
    if status is RequestStatus.CANCELLED:
        return 'Cancelled by the requester'
    if status is RequestStatus.PENDING:
        return 'Still waiting for a decision'
    if status is RequestStatus.FAILED:
        return f'Approved by {by}, but the grant failed'
    return f'Approved by {by}'
