"""The messages jit posts: the approval request, the requester's updates, the audit line, the deny modal.

Pure: these take requests and return ``(text, blocks)``; the notifier posts them. ``text`` is
always set too: it is what notifications and screen readers show.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.core.durations import format_duration
from bot.core.model import AccessRequest, RequestStatus
from bot.core.policy import Rule
from bot.ids import ActionId, BlockId, CallbackId

S = RequestStatus
Blocks = list[dict[str, Any]]


def clock(ts: float | None) -> str:
    """``14:30 UTC`` (with the date when it is not today)."""
    if not ts:
        return '?'
    when = datetime.fromtimestamp(ts, tz=UTC)
    if when.date() != datetime.now(tz=UTC).date():
        return when.strftime('%Y-%m-%d %H:%M UTC')
    return when.strftime('%H:%M:%S UTC') if when.second else when.strftime('%H:%M UTC')


def _section(text: str) -> dict[str, Any]:
    return {'type': 'section', 'text': {'type': 'mrkdwn', 'text': text[:3000]}}


def _context(text: str) -> dict[str, Any]:
    return {'type': 'context', 'elements': [{'type': 'mrkdwn', 'text': text[:3000]}]}


def what(request: AccessRequest) -> str:
    return f'*{request.role}* on *{request.resource}* for {format_duration(request.duration)}'


def progress(request: AccessRequest, rule: Rule | None) -> str:
    needed = rule.approvals_needed if rule else max(1, len(request.approvals))
    return f'{len(request.approvals)} of {needed}'


def names(approvers: tuple[str, ...] | list[str]) -> str:
    """Approvers as people read them: ``group:security`` is "security", a Slack ID a mention."""
    out = [a.removeprefix('group:') if a.startswith('group:') else f'<@{a}>' if a[:1] in 'UW' and a.isupper()
           else a for a in approvers]  # fmt: skip
    return ', '.join(out)


def waiting_line(request: AccessRequest, rule: Rule | None) -> str:
    """Where a pending request stands: ``1 of 2 approved — waiting for security``."""
    if rule is None or request.step >= len(rule.steps):
        return f'{progress(request, rule)} approved'
    return f'{progress(request, rule)} approved — waiting for {names(rule.steps[request.step].approvers)}'


def outcome_line(request: AccessRequest, rule: Rule | None) -> str:
    """The decision as every copy of the approval message shows it once it is taken."""
    by = request.decided_by.label if request.decided_by else 'policy'
    if request.status is S.DENIED:
        why = f': {request.deny_reason}' if request.deny_reason else ''
        return f':no_entry: Denied by {by}{why}'
    if request.status is S.EXPIRED:
        return ':hourglass: Expired: nobody decided in time'
    if request.status is S.CANCELLED:
        return ':wastebasket: Cancelled by the requester'
    if request.status is S.FAILED:
        return f':x: Approved by {by}, but the grant failed: {request.error}'
    base = f':white_check_mark: Approved by {by} · {progress(request, rule)}'
    if request.status is S.ACTIVE:
        return f'{base} · auto-revokes at {clock(request.expires_at)}'
    if request.status is S.REVOKED:
        return f'{base} · revoked at {clock(request.ended_at)}'
    if request.status is S.REVOKE_FAILED:
        return f'{base} · ended at {clock(request.expires_at)}, revoke failing: {request.error}'
    return f'{base} · granting'


def build_approval_message(request: AccessRequest, rule: Rule | None, *, can_decide: bool = True) -> tuple[str, Blocks]:
    """What an approver sees: who asks for what and why, the rule, where it stands, and the buttons while
    the request is pending and this copy's reader may still decide (not after their own approval, nor once
    the request has moved on to a step that is not theirs)."""
    text = f'{request.requester.label} asks for {what(request)}'
    if request.extends:
        text = (f'{request.requester.label} asks to extend `{request.extends}` ({request.role} on '
                f'{request.resource}) by {format_duration(request.duration)}')  # fmt: skip
    lines = [text, f'*Reason:* {request.reason or "_none given_"}']
    if request.ticket:
        lines.append(f'*Ticket:* {request.ticket}')
    if request.decision:
        lines.append(f'*Policy:* {request.decision}')
    blocks: Blocks = [
        _section('\n'.join(lines)),
        _context(f'Rule `{request.rule}` · request `{request.id}` · approvals {progress(request, rule)}'),
    ]
    if request.status is S.PENDING:
        blocks.append(_context(waiting_line(request, rule)))
        if not can_decide:
            return text, blocks
        blocks.append({'type': 'actions', 'block_id': BlockId.DECISION, 'elements': [
            {'type': 'button', 'action_id': ActionId.APPROVE, 'value': request.id, 'style': 'primary',
             'text': {'type': 'plain_text', 'text': 'Approve'}},
            {'type': 'button', 'action_id': ActionId.DENY, 'value': request.id, 'style': 'danger',
             'text': {'type': 'plain_text', 'text': 'Deny'}},
        ]})  # fmt: skip
    else:
        blocks.append(_section(outcome_line(request, rule)))
    return text, blocks


def build_status_message(request: AccessRequest, rule: Rule | None) -> tuple[str, Blocks]:
    """The requester's own copy, posted when the request is filed and updated with every step after:
    where it stands (with Cancel while it waits), then how it ended."""
    text = f'Your request `{request.id}`: {what(request)}'
    lines = [text, f'*Reason:* {request.reason or "_none given_"}']
    blocks: Blocks = [_section('\n'.join(lines))]
    if request.status is S.PENDING:
        blocks.append(_context(waiting_line(request, rule)))
        blocks.append({'type': 'actions', 'block_id': BlockId.STATUS, 'elements': [
            {'type': 'button', 'action_id': ActionId.CANCEL, 'value': request.id,
             'text': {'type': 'plain_text', 'text': 'Cancel request'}}]})  # fmt: skip
        return f'{text} · {waiting_line(request, rule)}', blocks
    line = outcome_line(request, rule)
    blocks.append(_section(line))
    return f'{text} · {line}', blocks


def build_warning_closed(request: AccessRequest) -> tuple[str, Blocks]:
    """The "ends soon" DM once the grant has ended: its buttons go, the news stays."""
    text = f':lock: Your grant `{request.id}` ({request.role} on {request.resource}) has ended.'
    return text, [_section(text)]


def build_expiry_warning(request: AccessRequest, extra: int) -> tuple[str, Blocks]:
    """The "ends soon" DM: Extend by ``extra`` seconds (when the rule leaves room), or Release now."""
    text = f':alarm_clock: Your grant `{request.id}` ({what(request)}) ends at {clock(request.expires_at)}.'
    buttons = []
    if extra > 0:
        buttons.append(
            {
                'type': 'button',
                'action_id': ActionId.EXTEND,
                'value': f'{request.id}|{extra}',
                'style': 'primary',
                'text': {'type': 'plain_text', 'text': f'Extend {format_duration(extra)}'},
            }
        )
    buttons.append({'type': 'button', 'action_id': ActionId.RELEASE, 'value': request.id,
                    'text': {'type': 'plain_text', 'text': 'Release now'}})  # fmt: skip
    return text, [_section(text), {'type': 'actions', 'elements': buttons}]


def build_deny_modal(request: AccessRequest, *, reason_required: bool) -> dict[str, Any]:
    """The modal Deny opens: the reason goes to the requester and the audit trail."""
    return {
        'type': 'modal', 'callback_id': CallbackId.DENY_MODAL, 'private_metadata': request.id,
        'title': {'type': 'plain_text', 'text': 'Deny request'},
        'submit': {'type': 'plain_text', 'text': 'Deny'}, 'close': {'type': 'plain_text', 'text': 'Cancel'},
        'blocks': [
            _section(f'{request.requester.label} asked for {what(request)}.'),
            {'type': 'input', 'block_id': BlockId.DENY_REASON, 'optional': not reason_required,
             'label': {'type': 'plain_text', 'text': 'Reason (sent to the requester)'},
             'element': {'type': 'plain_text_input', 'action_id': 'reason', 'multiline': True, 'max_length': 500}},
        ],
    }  # fmt: skip


def requester_update(event: str, request: AccessRequest, rule: Rule | None, approvers: str = '') -> str | None:
    """The DM the requester gets for an audit event, or None when there is nothing to tell."""
    rid = f'`{request.id}`'
    if event == 'request.created':
        return None  # the status message (build_status_message) says it, and keeps saying where it stands
    if event == 'request.approved':
        if request.status is S.PENDING:
            return f':hourglass_flowing_sand: {rid}: {waiting_line(request, rule)}.'
        by = request.decided_by.label if request.decided_by else 'policy'
        return f':white_check_mark: {rid} approved by {by}; granting now.'
    if event == 'request.denied':
        why = f' Reason: {request.deny_reason}' if request.deny_reason else ''
        return f':no_entry: {rid} was denied by {request.decided_by.label if request.decided_by else "?"}.{why}'
    if event == 'request.cancelled':
        return f':wastebasket: {rid} was cancelled.'
    if event == 'request.expired':
        return f':hourglass: {rid} expired: nobody decided in time.'
    if event == 'grant.extended':
        return f':hourglass: {rid} extended: it now ends at {clock(request.expires_at)}.'
    if event == 'grant.active' and request.extends:
        return None  # the grant it extends says so (grant.extended)
    if event == 'grant.revoked' and request.extends:
        return None
    if event == 'grant.active':
        return f':key: Granted {what(request)} ({rid}). Auto-revokes at {clock(request.expires_at)}.'
    if event == 'grant.failed':
        return f':x: {rid} could not be granted: {request.error}'
    if event == 'grant.revoked':
        return f':lock: Access ended: {request.role} on {request.resource} ({rid}).'
    if event == 'grant.revoke_failed':
        return f':rotating_light: Revoking {rid} keeps failing; jit keeps trying, and the admins know.'
    return None


def audit_line(record: dict[str, Any]) -> str:
    """One readable line per audit event, for the audit channel (a mirror; the record is in Redis)."""
    req = record.get('request') or {}
    actor = record.get('actor') or '?'
    who = f'<@{actor}>' if actor[:1] in ('U', 'W') else actor
    requester = req.get('requester') or {}
    asker = f"<@{requester['slack_id']}>" if requester.get('slack_id') else requester.get('pipeline', '?')
    parts = [f"`#{record.get('seq')}` *{record.get('event')}* by {who}"]
    if req:
        duration = format_duration(req.get('duration') or 0)
        parts.append(f"{asker} {req.get('role')} on {req.get('resource')} for {duration}")
        if req.get('reason'):
            parts.append(f"reason: {req['reason']}")
        parts.append(f"request `{req.get('id')}`")
    if not req and record.get('policy_version'):
        commit = (record.get('detail') or {}).get('commit')
        parts.append(f"policy `{record['policy_version']}`" + (f' (commit {commit[:12]})' if commit else ''))
    if record.get('rule'):
        parts.append(f"rule `{record['rule']}`")
    if record.get('outcome'):
        parts.append(f"→ {record['outcome']}")
    if record.get('error'):
        parts.append(f"error: {record['error']}")
    return ' · '.join(parts)
