"""The modal ``/jit request`` opens with no arguments: only what the user may request, durations the rule allows.

Slack modals cannot change one select's options when another changes without a round trip per choice,
so access is one select of *resource · role* pairs (each one the rule that would decide it), and the
duration select offers the usual lengths up to the longest any of them allows; the submission is
checked against the chosen pair's rule, and a duration too long for it is a field error, like any other.

Slack shows at most 100 options in a static select, or 100 option groups of 100 options each: past 100 pairs
the select groups them by resource (or, past 100 resources, in runs of 100 named by their first and last
resource), and pairs that even that cannot hold are named as left out, with the command that asks for them.
The reason field is required when every pair's rule needs a reason, optional when none does, and says
which pairs need one when it depends on the choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.core.durations import format_duration, seconds_value
from bot.core.model import MAX_REASON
from bot.core.policy import Resource, Role, Rule
from bot.ids import BlockId, CallbackId

#: What the duration select offers (seconds), cut at the longest the user's rules allow.
DURATIONS = (15 * 60, 30 * 60, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 86400)
#: Slack's limits on a static select: its options, or its option groups and the options of each.
MAX_OPTIONS = 100
MAX_GROUPS = 100
#: Slack's limits on an option's and an option group's visible text, and on an input's hint.
MAX_OPTION_TEXT = 75
MAX_HINT = 2000


@dataclass(frozen=True, slots=True)
class RequestForm:
    """What the user chose in the modal."""

    resource: str
    role: str
    duration: int | None
    reason: str
    ticket: str | None


def _option(text: str, value: str) -> dict[str, Any]:
    return {'text': {'type': 'plain_text', 'text': _cut(text, MAX_OPTION_TEXT)}, 'value': value}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + '…'


def _group(label: str, options: list[dict[str, Any]]) -> dict[str, Any]:
    return {'label': {'type': 'plain_text', 'text': _cut(label, MAX_OPTION_TEXT)}, 'options': options}


def _access_select(rows: list[tuple[Resource, Role, Rule]]) -> tuple[dict[str, Any], int]:
    """The access select and how many pairs it could not hold (0 up to 10,000 pairs)."""
    select: dict[str, Any] = {'type': 'static_select', 'action_id': 'access',
                              'placeholder': {'type': 'plain_text', 'text': 'resource · role'}}  # fmt: skip
    pairs = [(res.name, _option(f'{res.name} · {role.name}', f'{res.name}:{role.name}')) for res, role, _ in rows]
    if len(pairs) <= MAX_OPTIONS:
        select['options'] = [option for _, option in pairs]
        return select, 0
    by_resource: dict[str, list[dict[str, Any]]] = {}
    for name, option in pairs:
        by_resource.setdefault(name, []).append(option)
    groups = [
        _group(
            name if len(options) <= MAX_OPTIONS else f'{name} ({i // MAX_OPTIONS + 1})', options[i : i + MAX_OPTIONS]
        )
        for name, options in by_resource.items()
        for i in range(0, len(options), MAX_OPTIONS)
    ]
    if len(groups) > MAX_GROUPS:  # many resources with few roles: runs of 100 pairs, named by their ends
        runs = [pairs[i : i + MAX_OPTIONS] for i in range(0, len(pairs), MAX_OPTIONS)]
        groups = [_group(run[0][0] if run[0][0] == run[-1][0] else f'{run[0][0]} … {run[-1][0]}',
                         [option for _, option in run]) for run in runs]  # fmt: skip
    select['option_groups'] = groups[:MAX_GROUPS]
    offered = sum(len(group['options']) for group in select['option_groups'])
    return select, len(pairs) - offered


def _reason_block(rows: list[tuple[Resource, Role, Rule]]) -> dict[str, Any]:
    """Required when every choice's rule needs a reason, optional when none does; otherwise it names which do."""
    needing = [f'{res.name} · {role.name}' for res, role, rule in rows if rule.needs_reason]
    block: dict[str, Any] = {
        'type': 'input', 'block_id': BlockId.REQ_REASON,
        'label': {'type': 'plain_text', 'text': 'Reason (approvers see it)'},
        'element': {'type': 'plain_text_input', 'action_id': 'reason', 'multiline': True, 'max_length': MAX_REASON},
    }  # fmt: skip
    if len(needing) == len(rows):
        block['optional'] = False
        block['label']['text'] = 'Reason (required; approvers see it)'
        return block
    block['optional'] = True
    if needing:
        block['label']['text'] = 'Reason (required for some choices; approvers see it)'
        named = 'Required for ' + ', '.join(needing) + '.'
        hint = named if len(named) <= MAX_HINT else f'Required for {len(needing)} of the {len(rows)} choices.'
        block['hint'] = {'type': 'plain_text', 'text': hint}
    return block


def build_request_modal(rows: list[tuple[Resource, Role, Rule]]) -> dict[str, Any]:
    """The modal for the pairs ``requestable`` found; callers show a message instead when there are none."""
    access, left_out = _access_select(rows)
    longest = max(rule.max_duration for _, _, rule in rows)
    durations = sorted({d for d in DURATIONS if d <= longest} | {longest})
    default = min((rule.default_duration for _, _, rule in rows if rule.default_duration), default=None)
    duration_select: dict[str, Any] = {
        'type': 'static_select', 'action_id': 'duration',
        'placeholder': {'type': 'plain_text', 'text': 'the rule default'},
        'options': [_option(format_duration(d), str(d)) for d in durations],
    }  # fmt: skip
    if default in durations:
        duration_select['initial_option'] = _option(format_duration(default), str(default))
    needs_ticket = any(rule.ticket_pattern for _, _, rule in rows)
    return {
        'type': 'modal', 'callback_id': CallbackId.REQUEST_MODAL,
        'title': {'type': 'plain_text', 'text': 'Request access'},
        'submit': {'type': 'plain_text', 'text': 'Request'}, 'close': {'type': 'plain_text', 'text': 'Cancel'},
        'blocks': [
            {'type': 'input', 'block_id': BlockId.REQ_ACCESS, 'label': {'type': 'plain_text', 'text': 'Access'},
             'element': access},
            *([{'type': 'context', 'elements': [{'type': 'mrkdwn', 'text': (
                f'{left_out} more choices do not fit in this form; ask for one with '
                '`/jit request RESOURCE [ROLE] [DURATION] [REASON...]`.')}]}] if left_out else []),
            {'type': 'input', 'block_id': BlockId.REQ_DURATION, 'optional': True,
             'label': {'type': 'plain_text', 'text': 'For how long'}, 'element': duration_select},
            _reason_block(rows),
            *([{'type': 'input', 'block_id': BlockId.REQ_TICKET, 'optional': True,
                'label': {'type': 'plain_text', 'text': 'Ticket'},
                'element': {'type': 'plain_text_input', 'action_id': 'ticket', 'max_length': 100}}]
              if needs_ticket else []),
        ],
    }  # fmt: skip


def _value(values: dict[str, Any], block: str, action: str) -> Any:
    state = (values.get(block) or {}).get(action) or {}
    if not isinstance(state, dict):
        return None
    selected = state.get('selected_option')
    if isinstance(selected, dict):
        return selected.get('value')
    return state.get('value')


def read_request_form(view: dict[str, Any]) -> RequestForm | dict[str, str]:
    """The choices, or ``{block_id: error}`` for what is missing or unreadable (a forged or stale view)."""
    values = (view.get('state') or {}).get('values') or {}
    access = _value(values, BlockId.REQ_ACCESS, 'access')
    if not isinstance(access, str) or ':' not in access:
        return {BlockId.REQ_ACCESS.value: 'Choose what you need.'}
    resource, _, role = access.partition(':')
    raw = _value(values, BlockId.REQ_DURATION, 'duration')
    if raw is not None and seconds_value(raw) is None:
        return {BlockId.REQ_DURATION.value: 'Choose a duration from the list.'}
    reason = _value(values, BlockId.REQ_REASON, 'reason')
    ticket = _value(values, BlockId.REQ_TICKET, 'ticket')
    return RequestForm(
        resource=resource, role=role, duration=seconds_value(raw) if raw else None,
        reason=reason.strip() if isinstance(reason, str) else '',
        ticket=ticket.strip() if isinstance(ticket, str) and ticket.strip() else None,
    )  # fmt: skip


def field_for(message: str) -> str:
    """Which field a refusal is about, so the modal shows it there."""
    text = message.lower()
    if 'ticket' in text:
        return BlockId.REQ_TICKET.value
    if 'reason' in text:
        return BlockId.REQ_REASON.value
    if 'long' in text or 'duration' in text or 'at most' in text or 'at least' in text:
        return BlockId.REQ_DURATION.value
    return BlockId.REQ_ACCESS.value
