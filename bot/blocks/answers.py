"""The ephemeral answers to ``/jit``: filed, refused (with what would be allowed), resources, list.

A refusal may echo what the user typed (``No request has the ID `x```): :func:`refusal` escapes it, so that
an answer never carries a live mention or link either (``bot.blocks.mrkdwn``).
"""

from __future__ import annotations

from bot.blocks.messages import clock, progress, what
from bot.blocks.mrkdwn import code, mention, message, text
from bot.core.durations import format_duration
from bot.core.model import AccessRequest, Principal, RequestStatus
from bot.core.policy import Decision, Policy, requestable

S = RequestStatus


def filed_answer(request: AccessRequest, policy: Policy) -> str:
    rule = policy.rule_named(request.rule)
    if request.status is S.APPROVED:
        return f':white_check_mark: {code(request.id)}: {what(request)} was approved by policy; granting now.'
    why = message(request.decision[:1].upper() + request.decision[1:], 1000)
    return (f':inbox_tray: Filed {code(request.id)}: {what(request)}. {why} '
            f'({progress(request, rule)} so far). Where it stands is kept up to date in our DM.')  # fmt: skip


def refusal(user_message: str) -> str:
    """A refusal (a :class:`~bot.core.errors.JitError`'s message) as an answer: escaped, as it may echo input."""
    return f':warning: {message(user_message, 2000)}'


def denial_answer(user_message: str, decision: Decision | None) -> str:
    """Why not, and what the user may ask for instead."""
    lines = [f':no_entry_sign: {message(user_message, 2000)}']
    if decision is not None and decision.allowed:
        lines.append('You may request: ' + ', '.join(code(a) for a in decision.allowed[:15]))
    elif decision is not None:
        lines.append('There is nothing you may request under the current policy.')
    return '\n'.join(lines)


def resources_answer(policy: Policy, who: Principal) -> str:
    rows = requestable(policy, who)
    if not rows:
        return 'There is nothing you may request under the current policy.'
    lines = ['*What you may request:*']
    for res, role, rule in rows:
        approvers = ' then '.join(', '.join(text(a, 100) for a in s.approvers) for s in rule.steps)
        desc = f' - {text(res.description, 300)}' if res.description else ''
        lines.append(f'• {code(res.name)} {code(role.name)}{desc}: up to {format_duration(rule.max_duration)}, '
                     f'approved by {approvers or "approved automatically"}')  # fmt: skip
    return '\n'.join(lines)


def list_answer(mine: list[AccessRequest], waiting: list[AccessRequest], now: float) -> str:
    lines = []
    active = [r for r in mine if r.status in (S.ACTIVE, S.REVOKE_FAILED)]
    pending = [r for r in mine if r.status in (S.PENDING, S.APPROVED, S.GRANTING)]
    if active:
        lines.append('*Your active grants:*')
        lines += [f'• {code(r.id)} {what(r)}: ' + (
            f'{format_duration(int((r.expires_at or now) - now))} left (until {clock(r.expires_at)})'
            if r.status is S.ACTIVE else 'ended, but the revoke keeps failing: jit keeps trying and the admins know'
        ) for r in active]  # fmt: skip
    if pending:
        lines.append('*Your open requests:*')
        lines += [f'• {code(r.id)} {what(r)}: {r.status}' for r in pending]
    if waiting:
        lines.append('*Waiting for your decision:*')
        lines += [f'• {code(r.id)} {mention(r.requester)}: {what(r)}' for r in waiting]
    return '\n'.join(lines) or 'Nothing active, nothing pending, nothing waiting for you.'


#: What ending a request answers (``/jit release|revoke|cancel``, the buttons); its messages then tell the outcome.
_ENDED = {
    'release': 'Releasing {id}: I will tell you when access has ended.',
    'revoke': 'Revoking {id}: the grantee and the audit channel will be told.',
    'cancel': 'Cancelled {id}.',
}


def ended_answer(step: str, request_id: str) -> str:
    """What the requester is told at once after ``step`` (release, revoke or cancel) of ``request_id``."""
    return _ENDED[step].format(id=code(request_id))


def ssh_key_answer(fingerprint: str | None, *, registered: bool = False) -> str:
    """``/jit ssh-key``: the key just ``registered``, the one registered before, or how to register one."""
    if registered:
        return f':key: Registered your SSH key {code(fingerprint)}. SSH grants are certificates for this key.'
    if fingerprint:
        return f'Your SSH key: {code(fingerprint)}. Replace it: `/jit ssh-key ssh-ed25519 AAAA…`.'
    return 'No SSH key yet: `/jit ssh-key ssh-ed25519 AAAA… you@laptop` (your `.pub` file).'


def extend_answer(result: AccessRequest) -> str:
    """What ``/jit extend`` answers: extended now, or filed for approval."""
    if result.extends:
        return (f':inbox_tray: Filed {code(result.id)}: extend {code(result.extends)} by '
                f'{format_duration(result.duration)}. It needs approval; I will DM you.')  # fmt: skip
    return f':hourglass: {code(result.id)} extended: it now ends at {clock(result.expires_at)}.'
