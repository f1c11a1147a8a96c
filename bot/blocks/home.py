"""The App Home tab: my grants with time left (Release, Extend), my open requests, and what waits for me.

Published on ``app_home_opened`` and again after a button pressed in it, so what it shows is what the
store holds at that moment; the buttons are the same actions as in messages and run the same checks.
"""

from __future__ import annotations

from typing import Any

from bot.blocks.messages import clock, reason, what
from bot.blocks.mrkdwn import code, mention, section
from bot.core.durations import format_duration
from bot.core.model import AccessRequest, RequestStatus
from bot.core.policy import Policy
from bot.ids import ActionId

S = RequestStatus
#: Slack's limit is 100 blocks a view; each list is cut well before.
MAX_ROWS = 20


def _button(text: str, action: ActionId, value: str, style: str | None = None) -> dict[str, Any]:
    button = {'type': 'button', 'action_id': action, 'value': value, 'text': {'type': 'plain_text', 'text': text}}
    if style:
        button['style'] = style
    return button


def extension_step(request: AccessRequest, policy: Policy) -> int:
    """How much one Extend press adds: as the "ends soon" DM offers (0: the rule leaves no room)."""
    rule = policy.rule_named(request.rule)
    return max(0, min(rule.max_duration - request.duration, rule.default_duration, request.duration)) if rule else 0


def build_home(mine: list[AccessRequest], waiting: list[AccessRequest], policy: Policy, now: float) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {'type': 'header', 'text': {'type': 'plain_text', 'text': 'Your access'}},
    ]
    active = [r for r in mine if r.status in (S.ACTIVE, S.REVOKE_FAILED) and not r.extends][:MAX_ROWS]
    if not active:
        blocks.append(section('No active grants. `/jit` to request access.'))
    for r in active:
        if r.status is S.REVOKE_FAILED:
            blocks.append(section(f'{code(r.id)} {what(r)}: ended; the revoke keeps failing and jit keeps trying.'))
            continue
        left = format_duration(max(0, int((r.expires_at or now) - now)))
        blocks.append(section(f'{code(r.id)} {what(r)}: *{left} left* (until {clock(r.expires_at)})',
                               _button('Release', ActionId.RELEASE, r.id, 'danger')))  # fmt: skip
        extra = extension_step(r, policy)
        if extra:
            blocks.append({'type': 'actions', 'elements': [
                _button(f'Extend {format_duration(extra)}', ActionId.EXTEND, f'{r.id}|{extra}')]})  # fmt: skip
    pending = [r for r in mine if r.status in (S.PENDING, S.APPROVED, S.GRANTING)][:MAX_ROWS]
    if pending:
        blocks.append({'type': 'header', 'text': {'type': 'plain_text', 'text': 'Your open requests'}})
        blocks += [section(f'{code(r.id)} {what(r)}: {r.status}') for r in pending]
    blocks.append({'type': 'header', 'text': {'type': 'plain_text', 'text': 'Waiting for your decision'}})
    if not waiting:
        blocks.append(section('Nothing waits for you.'))
    for r in waiting[:MAX_ROWS]:
        blocks.append(section(f'{mention(r.requester)} asks for {what(r)}\n*Reason:* {reason(r)}'))
        approve = _button('Approve', ActionId.APPROVE, r.id, 'primary')
        blocks.append({'type': 'actions', 'elements': [approve, _button('Deny', ActionId.DENY, r.id, 'danger')]})
    return {'type': 'home', 'blocks': blocks[:100]}
