"""The policy as data: resources and their roles, the rules in order, the groups already expanded.

What :mod:`bot.core.policy_loader` builds from the YAML files and everything else reads: frozen, with every
group already expanded to the identifiers it contains (emails lower-cased, Slack user IDs,
``pipeline:NAME``). Import these names from :mod:`bot.core.policy`, which also holds the decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.core.durations import MIN_DURATION
from bot.core.model import Principal


@dataclass(frozen=True, slots=True)
class Source:
    """Where something was written: the policy file, the 1-based line and column."""

    file: str
    line: int
    column: int = 1

    def __str__(self) -> str:
        return f'{self.file}:{self.line}:{self.column}'


@dataclass(frozen=True, slots=True)
class Role:
    """A role of a resource, with the parameters its provider needs (e.g. ``{grant: pg_read_all_data}``)."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Resource:
    """Something people get access to, through one provider."""

    name: str
    provider: str
    roles: Mapping[str, Role]
    settings: Mapping[str, Any] = field(default_factory=dict)
    description: str = ''
    source: Source | None = None


#: Where approvers can be asked, besides Slack (``ask`` in a rule): ``email`` (each approver of the step, by
#: address) and ``teams:NAME`` (a card in the Teams channel NAME of the policy's ``teams``).
ASK_SLACK, ASK_EMAIL, ASK_TEAMS = 'slack', 'email', 'teams'


@dataclass(frozen=True, slots=True)
class TeamsChannel:
    """A Teams channel approval cards are posted to: ``webhook`` is an ``env:NAME`` reference to the channel's
    Workflows (or incoming) webhook URL, which is a secret (whoever has it can post there)."""

    name: str
    webhook: str
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One stage of approval: ``approvals`` distinct people out of ``approvers`` (as written)."""

    approvers: tuple[str, ...]
    approvals: int = 1


@dataclass(frozen=True, slots=True)
class Rule:
    """One entry of ``requests``: the first rule that matches a request decides it."""

    name: str
    resources: frozenset[str] | None = None
    roles: frozenset[str] | None = None
    requesters: tuple[str, ...] | None = None
    trigger: str | Mapping[str, Any] = 'slack'
    steps: tuple[Step, ...] = ()
    #: The longest a grant of this rule may last, extensions included (the policy's ``timeout`` key).
    max_duration: int = 3600
    default_duration: int = 3600
    min_duration: int = MIN_DURATION
    require_reason: bool = False
    ticket_pattern: str | None = None
    pending_timeout: int | None = None
    notify: tuple[str, ...] = ()
    auto_approve: bool = False
    break_glass: bool = False
    self_extend: int | None = None
    revoke_on_idle: int | bool | None = None
    require_deny_reason: bool = False
    #: Where the approvers are asked (``ask``): ``slack``, ``email``, ``teams:NAME``. A decision counts only
    #: from a channel listed here, Slack's always (its clicks are signed by Slack): a rule without ``email``
    #: or ``teams`` takes no decision by link.
    ask: tuple[str, ...] = (ASK_SLACK,)
    source: Source | None = None

    @property
    def approvals_needed(self) -> int:
        return sum(step.approvals for step in self.steps)

    @property
    def needs_reason(self) -> bool:
        """Whether a request under this rule is refused without a reason (``require_reason``, or break-glass)."""
        return self.require_reason or self.break_glass

    @property
    def asks_email(self) -> bool:
        return ASK_EMAIL in self.ask

    @property
    def teams_channels(self) -> tuple[str, ...]:
        """The names of the Teams channels this rule asks in."""
        return tuple(a.partition(':')[2] for a in self.ask if a.startswith(ASK_TEAMS + ':'))

    def decides_via(self, via: str) -> bool:
        """Whether a decision through ``via`` (``slack``, ``email``, ``teams``) counts under this rule."""
        if via == ASK_SLACK:
            return True
        if via == ASK_TEAMS:
            return bool(self.teams_channels)
        return via in self.ask


@dataclass(frozen=True, slots=True)
class Policy:
    """The merged, validated policy. ``groups`` map a group name to the identifiers it contains."""

    groups: Mapping[str, frozenset[str]]
    admins: frozenset[str]
    resources: Mapping[str, Resource]
    rules: tuple[Rule, ...]
    version: str = ''
    files: tuple[str, ...] = ()
    #: The git commit of the policy directory, when it is in git (set by whoever read the files).
    commit: str | None = None
    #: Teams channels that rules may ask in (``teams:`` at the top of a policy file), by name.
    teams: Mapping[str, TeamsChannel] = field(default_factory=dict)
    # Caches filled on first use (a policy never changes once built): resolved reference lists,
    # the rules that can cover each resource, and what a principal may request.
    _refs: dict[tuple[str, ...], frozenset[str]] = field(default_factory=dict, compare=False, repr=False)
    _by_resource: dict[str, tuple[Rule, ...]] = field(default_factory=dict, compare=False, repr=False)
    _allowed: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)

    def resolve(self, refs: tuple[str, ...] | frozenset[str] | None) -> frozenset[str]:
        """The identifiers that a list of policy references (emails, IDs, groups) stands for."""
        key = tuple(refs or ())
        hit = self._refs.get(key)
        if hit is None:
            out: set[str] = set()
            for ref in key:
                out |= resolve_ref(ref, self.groups)
            hit = self._refs[key] = frozenset(out)
        return hit

    def rules_for(self, resource: str) -> tuple[Rule, ...]:
        """The rules that can cover ``resource``, in policy order (an index built on first use)."""
        if not self._by_resource and self.resources:
            by: dict[str, list[Rule]] = {name: [] for name in self.resources}
            for rule in self.rules:
                for name in rule.resources if rule.resources is not None else self.resources:
                    by.setdefault(name, []).append(rule)
            self._by_resource.update({k: tuple(v) for k, v in by.items()})
        return self._by_resource.get(resource, ())

    def is_admin(self, who: Principal) -> bool:
        return bool(who.ids() & self.admins)

    def step_approvers(self, rule: Rule, step: int) -> frozenset[str]:
        """Identifiers that may approve ``step`` of ``rule`` (the requester is excluded elsewhere)."""
        if step >= len(rule.steps):
            return frozenset()
        return self.resolve(rule.steps[step].approvers)

    def rule_approvers(self, rule: Rule) -> frozenset[str]:
        """Identifiers that may approve some step of ``rule``: who is asked, who is told of a decision."""
        return frozenset().union(*(self.resolve(step.approvers) for step in rule.steps))

    def rule_named(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)


def resolve_ref(ref: str, groups: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """One reference to identifiers: ``group:NAME`` or a bare group name expands; an email lower-cases."""
    if ref.startswith('group:'):
        return groups.get(ref[len('group:') :], frozenset())
    if ref in groups:
        return groups[ref]
    if '@' in ref:
        return frozenset({ref.lower()})
    return frozenset({ref})
