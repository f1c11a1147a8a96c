"""Effective access under one policy: for each way of asking and each identity, the rule that decides, on what terms.

Part of :mod:`bot.core.policy_diff`, which compares two policies through these: the (resource, role) pairs
either names, the people either names (plus :data:`ANYONE`), the ways a request can arrive (:class:`Channel`),
the deciding rule for each identity (:func:`deciders`, the first rule that matches, as
:func:`~bot.core.policy.evaluate` picks it) and what that rule means for them (:class:`Terms`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.core.policy import ASK_EMAIL, Policy, Rule, trigger_matches

#: The identity that stands for someone no policy names: only rules without ``requesters`` cover it.
ANYONE = '*'


@dataclass(frozen=True, slots=True)
class Channel:
    """A way a request arrives: Slack, any pipeline, or a pipeline event with the conditions a rule names."""

    trigger: str
    context: Mapping[str, Any] | None = None
    via: str = ''

    def admits(self, identity: str) -> bool:
        """Slack users ask through Slack, pipelines through the API; "anyone" may use either."""
        return identity == ANYONE or identity.startswith('pipeline:') == (self.trigger == 'pipeline')

    @property
    def anyone(self) -> str:
        return 'any pipeline' if self.trigger == 'pipeline' else 'anyone in the workspace'


@dataclass(frozen=True, slots=True)
class Terms:
    """What the deciding rule means for one requester: everything a change of access is judged on."""

    rule: str
    approvers: frozenset[str]
    approvals: int
    max_duration: int
    auto_approve: bool
    break_glass: bool
    self_approval: bool
    require_reason: bool
    ticket_pattern: str | None
    self_extend: int | None
    #: Where else than Slack approvers decide, by link: ``(what it is, how messages say it)``, e.g.
    #: ``('email', 'by email')`` and ``('teams:env:TEAMS_SEC', 'in Teams channel sec (env:TEAMS_SEC)')``. A Teams
    #: channel is known by its webhook, so renaming it is no change.
    links: tuple[tuple[str, str], ...] = ()

    def comparable(self) -> tuple[Any, ...]:
        """The terms without the rule's name: two rules granting the same thing are the same access."""
        return (self.approvers, self.approvals, self.max_duration, self.auto_approve, self.break_glass,
                self.self_approval, self.require_reason, self.ticket_pattern, self.self_extend,
                frozenset(key for key, _ in self.links))  # fmt: skip


def role_pairs(old: Policy, new: Policy) -> list[tuple[str, str]]:
    """Every (resource, role) of either policy, sorted."""
    return sorted({(res.name, role) for p in (old, new) for res in p.resources.values() for role in res.roles})


def people_named(policy: Policy) -> set[str]:
    """Every identity a policy names: group members, admins, requesters and approvers."""
    out: set[str] = set(policy.admins)
    for members in policy.groups.values():
        out |= members
    for rule in policy.rules:
        out |= policy.resolve(rule.requesters) | policy.rule_approvers(rule)
    return out


def channels(old: Policy, new: Policy) -> list[Channel]:
    """Slack, any pipeline, then each pipeline event (with its conditions) that a rule of either policy names."""
    events: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for rule in (*old.rules, *new.rules):
        if isinstance(rule.trigger, Mapping):
            context = {('event' if k == 'pipeline' else str(k)): v for k, v in rule.trigger.items()}
            events.setdefault(tuple(sorted((k, str(v)) for k, v in context.items())), context)
    out = [Channel('slack'), Channel('pipeline', None, ' from a pipeline')]
    for key in sorted(events):
        context = events[key]
        conditions = ', '.join(f'{k}={v}' for k, v in key if k != 'event')
        via = f' from pipeline event {context["event"]}' + (f' ({conditions})' if conditions else '')
        out.append(Channel('pipeline', context, via))
    return out


def deciders(policy: Policy, resource: str, role: str, channel: Channel, ids: set[str]) -> dict[str, Rule]:
    """For each identity that may ask for ``role`` on ``resource`` through ``channel``, the rule that decides."""
    res = policy.resources.get(resource)
    if res is None or role not in res.roles:
        return {}
    out: dict[str, Rule] = {}
    left = set(ids)
    for rule in policy.rules_for(resource):
        if not left:
            break
        if rule.roles is not None and role not in rule.roles:
            continue
        if not trigger_matches(rule.trigger, channel.trigger, channel.context):
            continue
        hit = set(left) if rule.requesters is None else left & policy.resolve(rule.requesters)
        out.update(dict.fromkeys(hit, rule))
        left -= hit
    return out


def terms_of(policy: Policy, rule: Rule | None, identity: str) -> Terms | None:
    if rule is None:
        return None
    approvers = policy.rule_approvers(rule)
    single = not rule.auto_approve and not rule.break_glass and len(rule.steps) == 1 and rule.steps[0].approvals == 1
    return Terms(
        rule=rule.name,
        approvers=approvers,
        approvals=rule.approvals_needed,
        max_duration=rule.max_duration,
        auto_approve=rule.auto_approve,
        break_glass=rule.break_glass,
        self_approval=single and identity in policy.step_approvers(rule, 0),
        require_reason=rule.require_reason,
        ticket_pattern=rule.ticket_pattern,
        self_extend=rule.self_extend,
        links=links_of(policy, rule),
    )


def links_of(policy: Policy, rule: Rule) -> tuple[tuple[str, str], ...]:
    """Where approvers of ``rule`` decide by link (email, Teams), as :attr:`Terms.links` holds it."""
    out = [(ASK_EMAIL, 'by email')] if rule.asks_email else []
    for name in rule.teams_channels:
        channel = policy.teams.get(name)
        webhook = channel.webhook if channel is not None else ''
        out.append((f'teams:{webhook}', f'in Teams channel {name} ({webhook})'))
    return tuple(out)
