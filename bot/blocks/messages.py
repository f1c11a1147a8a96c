"""The messages jit posts: the approval request, the requester's updates, the audit line, the deny modal.

Pure: these take requests and return ``(text, blocks)``; the notifier posts them. ``text`` is
always set too: it is what notifications and screen readers show (and Slack reads it as mrkdwn too).
Whatever a user, a pipeline or a provider wrote goes in through ``bot.blocks.mrkdwn`` only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.blocks.mrkdwn import code, context, literal, mention, message, section, text, user
from bot.core.durations import format_duration
from bot.core.model import AccessRequest, AuditName, RequestStatus
from bot.core.policy import Rule
from bot.core.progress import asked_in
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


#: How much of each free text a message shows (Slack takes 3,000 characters a section; the audit trail has it all).
#: A reason is at most MAX_REASON characters when filed, but escaping (``&`` is ``&amp;``) makes it longer.
REASON_CHARS, TICKET_CHARS, ERROR_CHARS, POLICY_CHARS = 1000, 200, 500, 1000


def what(request: AccessRequest) -> str:
    return f'*{text(request.role, 100)}* on *{text(request.resource, 100)}* for {format_duration(request.duration)}'


def grant(request: AccessRequest) -> str:
    """``read on demo-app``: the plain form, for lines that are bold elsewhere."""
    return f'{text(request.role, 100)} on {text(request.resource, 100)}'


def reason(request: AccessRequest) -> str:
    return text(request.reason, REASON_CHARS) if request.reason else '_none given_'


def progress(request: AccessRequest, rule: Rule | None) -> str:
    needed = rule.approvals_needed if rule else max(1, len(request.approvals))
    return f'{len(request.approvals)} of {needed}'


def names(approvers: tuple[str, ...] | list[str]) -> str:
    """Approvers as people read them: ``group:security`` is "security", a Slack ID a mention."""
    return ', '.join(text(a.removeprefix('group:'), 100) if a.startswith('group:') else user(a) for a in approvers)


def waiting_line(request: AccessRequest, rule: Rule | None) -> str:
    """Where a pending request stands: ``1 of 2 approved — waiting for security``."""
    if rule is None or request.step >= len(rule.steps):
        return f'{progress(request, rule)} approved'
    where = asked_in(rule)  # "sec@example.com (email)": the requester knows where to nudge
    return (f'{progress(request, rule)} approved — waiting for {names(rule.steps[request.step].approvers)}'
            + (f' ({where})' if where else ''))  # fmt: skip


def outcome_line(request: AccessRequest, rule: Rule | None) -> str:
    """The decision as every copy of the approval message shows it once it is taken."""
    by = mention(request.decided_by, nobody='policy')
    if request.status is S.DENIED:
        why = f': {text(request.deny_reason, REASON_CHARS)}' if request.deny_reason else ''
        return f':no_entry: Denied by {by}{why}'
    if request.status is S.EXPIRED:
        return ':hourglass: Expired: nobody decided in time'
    if request.status is S.CANCELLED:
        return ':wastebasket: Cancelled by the requester'
    if request.status is S.FAILED:
        return f':x: Approved by {by}, but the grant failed: {text(request.error, ERROR_CHARS)}'
    base = f':white_check_mark: Approved by {by} · {progress(request, rule)}'
    if request.status is S.ACTIVE:
        return f'{base} · auto-revokes at {clock(request.expires_at)}'
    if request.status is S.REVOKED:
        return f'{base} · revoked at {clock(request.ended_at)}'
    if request.status is S.REVOKE_FAILED:
        return f'{base} · ended at {clock(request.expires_at)}, revoke failing: {text(request.error, ERROR_CHARS)}'
    return f'{base} · granting'


def build_approval_message(request: AccessRequest, rule: Rule | None, *, can_decide: bool = True) -> tuple[str, Blocks]:
    """What an approver sees: who asks for what (ticket, the policy's word), the rule, then why in a section of
    its own, where it stands, and the buttons while
    the request is pending and this copy's reader may still decide (not after their own approval, nor once
    the request has moved on to a step that is not theirs)."""
    head = f'{mention(request.requester)} asks for {what(request)}'
    if request.extends:
        head = (f'{mention(request.requester)} asks to extend {code(request.extends)} ({grant(request)}) '
                f'by {format_duration(request.duration)}')  # fmt: skip
    lines = [head]
    if request.ticket:
        lines.append(f'*Ticket:* {text(request.ticket, TICKET_CHARS)}')
    if request.decision:
        lines.append(f'*Policy:* {message(request.decision, POLICY_CHARS)}')
    # The facts the decision rests on first, each part bounded well within a section; the reason, the one long
    # free text, after them in its own section, cut with an ellipsis: it is never what pushes the facts out.
    blocks: Blocks = [
        section('\n'.join(lines)),
        context(f'Rule {code(request.rule)} · request {code(request.id)} · approvals {progress(request, rule)}'),
        section(f'*Reason:* {reason(request)}'),
    ]
    if request.status is S.PENDING:
        blocks.append(context(waiting_line(request, rule)))
        if not can_decide:
            return head, blocks
        blocks.append({'type': 'actions', 'block_id': BlockId.DECISION, 'elements': [
            {'type': 'button', 'action_id': ActionId.APPROVE, 'value': request.id, 'style': 'primary',
             'text': {'type': 'plain_text', 'text': 'Approve'}},
            {'type': 'button', 'action_id': ActionId.DENY, 'value': request.id, 'style': 'danger',
             'text': {'type': 'plain_text', 'text': 'Deny'}},
        ]})  # fmt: skip
    else:
        blocks.append(section(outcome_line(request, rule)))
    return head, blocks


def build_status_message(request: AccessRequest, rule: Rule | None) -> tuple[str, Blocks]:
    """The requester's own copy, posted when the request is filed and updated with every step after:
    where it stands (with Cancel while it waits), then how it ended."""
    head = f'Your request {code(request.id)}: {what(request)}'
    blocks: Blocks = [section(f'{head}\n*Reason:* {reason(request)}')]
    if request.status is S.PENDING:
        blocks.append(context(waiting_line(request, rule)))
        blocks.append({'type': 'actions', 'block_id': BlockId.STATUS, 'elements': [
            {'type': 'button', 'action_id': ActionId.CANCEL, 'value': request.id,
             'text': {'type': 'plain_text', 'text': 'Cancel request'}}]})  # fmt: skip
        return f'{head} · {waiting_line(request, rule)}', blocks
    line = outcome_line(request, rule)
    blocks.append(section(line))
    return f'{head} · {line}', blocks


def build_warning_closed(request: AccessRequest) -> tuple[str, Blocks]:
    """The "ends soon" DM without its buttons, where it cannot be deleted once the grant ended (the notifier
    deletes it: the requester's "Access ended" DM tells the end), or while a failing revoke is retried."""
    if request.status is S.REVOKED:
        line = f':lock: Your grant {code(request.id)} ({grant(request)}) has ended.'
    else:
        ended = clock(request.expires_at)
        line = f':alarm_clock: Your grant {code(request.id)} ({grant(request)}) was due to end at {ended}.'
    return line, [section(line)]


def build_expiry_warning(request: AccessRequest, extra: int) -> tuple[str, Blocks]:
    """The "ends soon" DM: Extend by ``extra`` seconds (when the rule leaves room), or Release now."""
    line = f':alarm_clock: Your grant {code(request.id)} ({what(request)}) ends at {clock(request.expires_at)}.'
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
    return line, [section(line), {'type': 'actions', 'elements': buttons}]


def build_deny_modal(request: AccessRequest, *, reason_required: bool) -> dict[str, Any]:
    """The modal Deny opens: the reason goes to the requester and the audit trail."""
    return {
        'type': 'modal', 'callback_id': CallbackId.DENY_MODAL, 'private_metadata': request.id,
        'title': {'type': 'plain_text', 'text': 'Deny request'},
        'submit': {'type': 'plain_text', 'text': 'Deny'}, 'close': {'type': 'plain_text', 'text': 'Cancel'},
        'blocks': [
            section(f'{mention(request.requester)} asked for {what(request)}.'),
            {'type': 'input', 'block_id': BlockId.DENY_REASON, 'optional': not reason_required,
             'label': {'type': 'plain_text', 'text': 'Reason (sent to the requester)'},
             'element': {'type': 'plain_text_input', 'action_id': 'reason', 'multiline': True, 'max_length': 500}},
        ],
    }  # fmt: skip


def requester_update(event: str, request: AccessRequest, rule: Rule | None) -> str | None:
    """The DM the requester gets for an audit event, or None when there is nothing to tell."""
    rid = code(request.id)
    if event == AuditName.REQUEST_CREATED:
        return None  # the status message (build_status_message) says it, and keeps saying where it stands
    if event == AuditName.REQUEST_APPROVED:
        if request.status is S.PENDING:
            return f':hourglass_flowing_sand: {rid}: {waiting_line(request, rule)}.'
        return f':white_check_mark: {rid} approved by {mention(request.decided_by, nobody="policy")}; granting now.'
    if event == AuditName.REQUEST_DENIED:
        why = f' Reason: {text(request.deny_reason, REASON_CHARS)}' if request.deny_reason else ''
        return f':no_entry: {rid} was denied by {mention(request.decided_by, nobody="?")}.{why}'
    if event == AuditName.REQUEST_CANCELLED:
        return f':wastebasket: {rid} was cancelled.'
    if event == AuditName.REQUEST_EXPIRED:
        return f':hourglass: {rid} expired: nobody decided in time.'
    if event == AuditName.GRANT_EXTENDED:
        return f':hourglass: {rid} extended: it now ends at {clock(request.expires_at)}.'
    if event == AuditName.GRANT_ACTIVE and request.extends:
        return None  # the grant it extends says so (grant.extended)
    if event == AuditName.GRANT_REVOKED and request.extends:
        return None
    if event == AuditName.GRANT_ACTIVE:
        return f':key: Granted {what(request)} ({rid}). Auto-revokes at {clock(request.expires_at)}.'
    if event == AuditName.GRANT_FAILED:
        return f':x: {rid} could not be granted: {text(request.error, ERROR_CHARS)}'
    if event == AuditName.GRANT_REVOKED:
        return f':lock: Access ended: {grant(request)} ({rid}).'
    if event == AuditName.GRANT_REVOKE_FAILED:
        return f':rotating_light: Revoking {rid} keeps failing; jit keeps trying, and the admins know.'
    return None


def reminder_text(request: AccessRequest, number: int, waiting: str) -> str:
    """The nudge to approvers who have not decided (``waiting``: how long the request has waited)."""
    return (f':bell: Reminder {number}: {mention(request.requester)} has been waiting {waiting} for a decision on '
            f'{code(request.id)} ({grant(request)}).')  # fmt: skip


def details_text(request: AccessRequest, details: dict[str, Any]) -> str:
    """The access details DM (shown once). A value shows exactly as the provider gave it: in a code span, or a
    code block when it holds a backtick or a line break, with only ``& < >`` escaped (all Slack decodes)."""
    lines = []
    for key, value in details.items():
        shown = literal(value)
        if '```' in shown:  # nothing shows three backticks in a row as they are: they become look-alikes
            shown = '```' + shown.replace('`', '\u02cb') + '```'
        elif '`' in shown or '\n' in shown:
            shown = f'```{shown}```'
        else:
            shown = f'`{shown}`'
        lines.append(f'• *{text(key, 100) or "?"}*: {shown}')
    return f'Access details for {code(request.id)} (shown once):\n' + '\n'.join(lines)


def audit_line(record: dict[str, Any]) -> str:
    """One readable line per audit event, for the audit channel (a mirror; the record is in Redis).

    The record holds what people and pipelines wrote (reason, names, a provider's error): all of it is text.
    """
    req = record.get('request') or {}
    who = user(record.get('actor') or '?')
    requester = req.get('requester') or {}
    slack_id, pipeline = requester.get('slack_id'), requester.get('pipeline')
    asker = user(slack_id) if slack_id else 'pipeline:' + text(pipeline, 100) if pipeline else '?'
    parts = [f"{code('#' + str(record.get('seq')))} *{text(record.get('event'), 100)}* by {who}"]
    if req:
        duration = format_duration(req.get('duration') or 0)
        parts.append(f"{asker} {text(req.get('role'), 100)} on {text(req.get('resource'), 100)} for {duration}")
        if req.get('reason'):
            parts.append(f"reason: {text(req['reason'], REASON_CHARS)}")
        parts.append(f"request {code(req.get('id'))}")
    if not req and record.get('policy_version'):
        commit = (record.get('detail') or {}).get('commit')
        parts.append(f"policy {code(record['policy_version'])}" + (f' (commit {text(commit[:12])})' if commit else ''))
    if record.get('rule'):
        parts.append(f"rule {code(record['rule'])}")
    detail = record.get('detail') or {}
    if detail.get('via') and detail['via'] != 'slack':
        parts.append(f"via {text(detail['via'], 20)}")
    if record.get('event') == AuditName.DELIVERY_FAILED:
        parts.append(f"{text(detail.get('channel'), 20)} to {text(detail.get('to'), 200)}, "
                     f"attempt {text(detail.get('attempts'), 10)}")  # fmt: skip
    if record.get('outcome'):
        parts.append(f"→ {text(record['outcome'], 100)}")
    if record.get('error'):
        parts.append(f"error: {text(record['error'], ERROR_CHARS)}")
    return ' · '.join(parts)
