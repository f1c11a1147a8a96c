"""The policy and the decision: who may ask for what, and who must approve.

A ``Policy`` is what ``bot.core.policy_loader`` builds from the YAML files: frozen, with every
group already expanded to the identifiers it contains (emails lower-cased, Slack user IDs,
``pipeline:NAME``). :func:`evaluate` is a pure function from (policy, who, what) to a
:class:`Decision` that carries the rule and a reason in words; the Slack answer, the audit
event and ``jit policy explain`` all print that same reason.

The data model (``Policy``, ``Rule``, ``Resource``, ...) is written in :mod:`bot.core._policy_model` and
a rule's ``ticket_pattern`` is compiled in :mod:`bot.core._ticket_pattern`; both are imported from here,
which reads as the decision, top to bottom.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bot.core._policy_model import (
    ASK_EMAIL,
    ASK_SLACK,
    ASK_TEAMS,
    Policy,
    Resource,
    Role,
    Rule,
    Source,
    Step,
    TeamsChannel,
    resolve_ref,
)
from bot.core._ticket_pattern import (
    MAX_TICKET_LENGTH,
    MAX_TICKET_PATTERN_LENGTH,
    TicketPatternError,
    compile_ticket_pattern,
)
from bot.core.characters import is_blank
from bot.core.durations import format_duration
from bot.core.model import Principal

__all__ = [
    'ASK_EMAIL',
    'ASK_SLACK',
    'ASK_TEAMS',
    'MAX_TICKET_LENGTH',
    'MAX_TICKET_PATTERN_LENGTH',
    'Decision',
    'DecisionKind',
    'Policy',
    'Resource',
    'Role',
    'Rule',
    'Source',
    'Step',
    'TeamsChannel',
    'TicketPatternError',
    'compile_ticket_pattern',
    'evaluate',
    'requestable',
    'resolve_ref',
    'rule_covers',
    'trigger_matches',
]


class DecisionKind(StrEnum):
    """What the policy says about a request."""

    AUTO_APPROVED = 'auto_approved'
    NEEDS_APPROVAL = 'needs_approval'
    BREAK_GLASS = 'break_glass'
    DENIED = 'denied'


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy's answer, with the reason in words and, when denied, what would be allowed."""

    kind: DecisionKind
    reason: str
    resource: str | None = None
    role: str | None = None
    rule: Rule | None = None
    duration: int | None = None
    ticket: str | None = None
    allowed: tuple[str, ...] = ()

    @property
    def denied(self) -> bool:
        return self.kind is DecisionKind.DENIED


def trigger_matches(rule_trigger: str | Mapping[str, Any], trigger: str, context: Mapping[str, Any] | None) -> bool:
    """Does a request coming through ``trigger`` (``slack`` or ``pipeline``) fall under this rule?

    A mapping trigger like ``{pipeline: pr_merge, branch: production}`` matches a pipeline request
    whose context has ``event == pr_merge`` and ``branch == production``.
    """
    if isinstance(rule_trigger, str):
        return rule_trigger == 'any' or rule_trigger == trigger
    if trigger != 'pipeline':
        return False
    ctx = context or {}
    for key, want in rule_trigger.items():
        have = ctx.get('event') if key == 'pipeline' else ctx.get(key)
        if str(have) != str(want):
            return False
    return True


def rule_covers(policy: Policy, rule: Rule, who: Principal, resource: str, role: str) -> bool:
    """Does ``rule`` cover ``who`` asking for ``role`` on ``resource`` (trigger aside)?"""
    if rule.resources is not None and resource not in rule.resources:
        return False
    if rule.roles is not None and role not in rule.roles:
        return False
    return rule.requesters is None or bool(who.ids() & policy.resolve(rule.requesters))


def requestable(
    policy: Policy, who: Principal, trigger: str = 'slack', context: Mapping[str, Any] | None = None
) -> list[tuple[Resource, Role, Rule]]:
    """Every (resource, role) ``who`` may ask for, with the rule that would decide it (the first that matches)."""
    ids = who.ids()
    found: dict[tuple[str, str], Rule] = {}
    for rule in policy.rules:
        if not trigger_matches(rule.trigger, trigger, context):
            continue
        if rule.requesters is not None and not ids & policy.resolve(rule.requesters):
            continue
        names = rule.resources if rule.resources is not None else policy.resources.keys()
        for name in names:
            for role in policy.resources[name].roles:
                if rule.roles is None or role in rule.roles:
                    found.setdefault((name, role), rule)
    return [
        (res, role, found[(res.name, role.name)])
        for res in policy.resources.values()
        for role in res.roles.values()
        if (res.name, role.name) in found
    ]


def _allowed_lines(policy: Policy, who: Principal, trigger: str, context: Mapping[str, Any] | None) -> tuple[str, ...]:
    key = (trigger, *sorted(who.ids()))
    if context is None and key in policy._allowed:
        return policy._allowed[key]
    lines = tuple(
        f'{res.name} {role.name} (up to {format_duration(rule.max_duration)})'
        for res, role, rule in requestable(policy, who, trigger, context)
    )
    if context is None:
        policy._allowed[key] = lines
    return lines


def _fits(regex: Any, text: str) -> bool:
    """Does ``regex`` find a match in ``text``? Text longer than a ticket, or not valid Unicode, never does."""
    if len(text) > MAX_TICKET_LENGTH:
        return False
    try:
        return regex.search(text) is not None
    except UnicodeEncodeError:  # a lone surrogate: RE2 matches UTF-8
        return False


def _find_ticket(rule: Rule, ticket: str | None, reason: str) -> tuple[str | None, str | None]:
    """The ticket of a request under ``rule``: (the ticket, None), or (None, why it is refused)."""
    assert rule.ticket_pattern is not None
    try:
        regex = compile_ticket_pattern(rule.ticket_pattern)
    except TicketPatternError as exc:  # the loader refuses such a pattern: a policy built some other way
        return None, f'the ticket could not be checked against the `ticket_pattern` of rule `{rule.name}` ({exc})'
    missing = f'rule `{rule.name}` requires a ticket matching `{rule.ticket_pattern}`'
    if ticket:
        if len(ticket) > MAX_TICKET_LENGTH:
            return None, f'{missing}, and a ticket has at most {MAX_TICKET_LENGTH} characters'
        return (ticket, None) if _fits(regex, ticket) else (None, missing)
    found = next((word for word in reason.split() if _fits(regex, word)), None)
    return (found, None) if found is not None else (None, missing)


def evaluate(
    policy: Policy,
    who: Principal,
    resource: str,
    role: str | None = None,
    duration: int | None = None,
    *,
    reason: str = '',
    ticket: str | None = None,
    trigger: str = 'slack',
    context: Mapping[str, Any] | None = None,
) -> Decision:
    """Decide a request. Pure: the same inputs give the same decision and the same reason.

    Args:
        policy: the loaded policy.
        who: the requester.
        resource: the resource name as typed.
        role: the role, or None when the resource has a single role.
        duration: seconds asked for, or None for the rule's ``default_duration``.
        reason: the free-text reason (may contain the ticket).
        ticket: an explicit ticket; otherwise the first word of ``reason`` that fits ``ticket_pattern``.
        trigger: ``slack`` or ``pipeline``.
        context: what a pipeline sent (event, branch, ...), matched against mapping triggers.

    Returns:
        The decision; when it is DENIED, ``reason`` says why and ``allowed`` what would be allowed.
    """

    def deny(why: str, rule: Rule | None = None) -> Decision:
        return Decision(DecisionKind.DENIED, why, resource, role, rule, duration,
                        allowed=_allowed_lines(policy, who, trigger, context))  # fmt: skip

    res = policy.resources.get(resource)
    if res is None:
        return deny(f'there is no resource called `{resource}`')
    if role is None:
        if len(res.roles) != 1:
            return deny(f'`{resource}` has several roles ({", ".join(res.roles)}): say which one')
        role = next(iter(res.roles))
    if role not in res.roles:
        return deny(f'`{resource}` has no role `{role}` (its roles: {", ".join(res.roles)})')
    rule = next(
        (r for r in policy.rules_for(resource)
         if trigger_matches(r.trigger, trigger, context) and rule_covers(policy, r, who, resource, role)),
        None,
    )  # fmt: skip
    if rule is None:
        return deny(f'no rule lets you request `{resource}` `{role}`')
    wanted = rule.default_duration if duration is None else duration
    if wanted > rule.max_duration:
        return deny(f'{format_duration(wanted)} is longer than rule `{rule.name}` allows '
                    f'(at most {format_duration(rule.max_duration)})', rule)  # fmt: skip
    if wanted < rule.min_duration:
        return deny(f'{format_duration(wanted)} is shorter than the minimum of {format_duration(rule.min_duration)}',
                    rule)  # fmt: skip
    if rule.needs_reason and is_blank(reason):
        return deny(f'rule `{rule.name}` requires a reason', rule)
    found_ticket = ticket
    if rule.ticket_pattern:
        found_ticket, refusal = _find_ticket(rule, ticket, reason)
        if refusal is not None:
            return deny(refusal, rule)
    if rule.auto_approve:
        kind, why = DecisionKind.AUTO_APPROVED, f'rule `{rule.name}` approves this automatically'
    elif rule.break_glass:
        kind, why = DecisionKind.BREAK_GLASS, f'rule `{rule.name}` allows break-glass self-approval'
    else:
        kind = DecisionKind.NEEDS_APPROVAL
        stages = ' then '.join(f'{s.approvals} of {", ".join(s.approvers)}' for s in rule.steps)
        why = f'rule `{rule.name}` needs approval by {stages}'
    return Decision(kind, why, resource, role, rule, wanted, found_ticket)
