"""Policy lint: rules that load but probably do not mean what their authors think.

Core layer, pure: a function from a loaded :class:`~bot.core.policy.Policy` to a list of
:class:`Finding`. ``jit policy validate`` prints them after the schema check (product.md §2, §7).
Findings are warnings: they never stop a policy from loading; ``validate --strict`` makes them fail
CI. Each check is a small function that only reports what it is certain of (identifiers are
compared as written: an email and a Slack user ID may be the same person, which lint cannot know).
The one check that needs more than a few lines, nested-quantifier, asks :mod:`bot.core._lint_ticket_pattern`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from bot.core._lint_ticket_pattern import ambiguous_repeat
from bot.core.durations import format_duration
from bot.core.policy import Policy, Rule, Source
from bot.core.policy_loader import BUILTIN_SECRET_SETTINGS

#: Code -> what the check catches, one line each (``jit policy validate`` and the docs list them).
LINT_RULES: dict[str, str] = {
    'self-approval': 'a requester is also an approver of a rule decided by one approval in one step',
    'unapprovable': 'a rule whose approvals can never all be given by distinct people other than the requester',
    'duration-cap': 'a rule whose timeout (longest grant) is over the cap (--max-duration, default 12h)',
    'auto-approve-privileged': 'auto_approve on a rule covering a write/admin/owner/root/superuser role',
    'shadowed': 'a rule that never decides anything: earlier rules match every request it covers first',
    'inline-secret': 'a secret-looking resource setting written inline instead of as env:NAME',
    'break-glass-without-reason': 'break_glass: true without require_reason: true',
    'open-requesters': 'a rule without requesters: everyone in the workspace may request',
    'open-resources': 'a rule without resources: it covers every resource, present and future',
    'nested-quantifier': 'a ticket_pattern that repeats a repeat, as (x+)+: exponential in a backtracking engine',
    'email-approver-without-address': 'a rule asks by email, but some of its approvers are Slack user IDs only',
    'teams-without-email': 'a rule asks in Teams (decided through links sent by email), but some approvers have '
    'no address',
}

DEFAULT_MAX_DURATION = 12 * 3600
PRIVILEGED_ROLE = re.compile(r'write|admin|owner|root|superuser', re.IGNORECASE)
SECRET_KEY = re.compile(r'secret|password|passwd|token|key|dsn|credential', re.IGNORECASE)
#: Beyond this many steps, only single steps and all steps together are checked (subsets grow as 2^n).
_MAX_SUBSET_STEPS = 8


@dataclass(frozen=True, slots=True)
class Finding:
    """One lint warning: a code from :data:`LINT_RULES`, a message naming the rule, and where it is written."""

    code: str
    message: str
    source: Source | None

    def __str__(self) -> str:
        where = self.source if self.source is not None else '<policy>'
        return f'{where}: warning[{self.code}]: {self.message}'


def lint(policy: Policy, *, max_duration: int = DEFAULT_MAX_DURATION) -> list[Finding]:
    """Every lint finding of ``policy``, sorted by file, line and column.

    Args:
        policy: a policy as the loader built it.
        max_duration: the longest grant, in seconds, a rule's ``timeout`` may allow without a warning.

    Returns:
        The findings; an empty list when the policy has nothing to warn about.
    """
    checks: list[Callable[[Policy], Iterator[Finding]]] = [
        _self_approval,
        _unapprovable,
        lambda p: _duration_cap(p, max_duration),
        _auto_approve_privileged,
        _shadowed,
        _inline_secret,
        _break_glass_without_reason,
        _open_scope,
        _nested_quantifier,
        _approvers_without_address,
    ]
    findings = [finding for check in checks for finding in check(policy)]
    return sorted(findings, key=_sort_key)


def _sort_key(finding: Finding) -> tuple[bool, str, int, int, str, str]:
    src = finding.source
    if src is None:
        return (True, '', 0, 0, finding.code, finding.message)
    return (False, src.file, src.line, src.column, finding.code, finding.message)


def _names(ids: frozenset[str] | set[str]) -> str:
    return ', '.join(sorted(ids))


def _covered(policy: Policy, rule: Rule) -> list[tuple[str, str]]:
    """Every (resource, role) pair ``rule`` covers, in policy order."""
    names = rule.resources if rule.resources is not None else policy.resources.keys()
    return [
        (res.name, role)
        for res in policy.resources.values()
        if res.name in names
        for role in res.roles
        if rule.roles is None or role in rule.roles
    ]


def _self_approval(policy: Policy) -> Iterator[Finding]:
    for rule in policy.rules:
        if rule.requesters is None or rule.auto_approve or rule.break_glass or len(rule.steps) != 1:
            continue
        if rule.steps[0].approvals != 1:
            continue
        both = policy.resolve(rule.requesters) & policy.step_approvers(rule, 0)
        if both:
            yield Finding('self-approval', f'rule `{rule.name}`: {_names(both)} may both request and approve, and one '
                          'approval decides; only the run-time refusal of self-approval stops them approving '
                          'their own request', rule.source)  # fmt: skip


def _hall_violation(steps: list[tuple[frozenset[str], int]]) -> tuple[tuple[int, ...], int, int] | None:
    """The first set of steps that cannot get its approvals from distinct people, if any.

    Approvals are by distinct people across the whole request, so a rule can be approved only
    when every set of its steps has at least as many approvers (together) as it needs approvals.

    Returns:
        (step indexes, approvals needed, approvers available) of the smallest failing set, or None.
    """
    n = len(steps)
    sizes = range(1, n + 1) if n <= _MAX_SUBSET_STEPS else (1, n)
    for size in sizes:
        for subset in combinations(range(n), size):
            people = frozenset().union(*(steps[i][0] for i in subset))
            needed = sum(steps[i][1] for i in subset)
            if needed > len(people):
                return subset, needed, len(people)
    return None


def _steps_text(rule: Rule, subset: tuple[int, ...]) -> str:
    if len(rule.steps) == 1:
        return 'it needs'
    if len(subset) == 1:
        return f'step {subset[0] + 1} needs'
    return 'steps ' + ', '.join(str(i + 1) for i in subset) + ' together need'


def _unapprovable(policy: Policy) -> Iterator[Finding]:
    for rule in policy.rules:
        if rule.auto_approve or rule.break_glass or not rule.steps:
            continue
        steps = [(policy.step_approvers(rule, i), step.approvals) for i, step in enumerate(rule.steps)]
        found = _hall_violation(steps)
        if found is not None:
            subset, needed, have = found
            yield Finding('unapprovable', f'rule `{rule.name}`: {_steps_text(rule, subset)} {needed} approval(s) by '
                          f'distinct people but {have} approver(s) are listed: no request can be approved',
                          rule.source)  # fmt: skip
            continue
        if rule.requesters is None:
            continue
        stuck = {who for who in policy.resolve(rule.requesters)
                 if _hall_violation([(people - {who}, k) for people, k in steps]) is not None}  # fmt: skip
        if stuck:
            yield Finding('unapprovable', f'rule `{rule.name}`: a request by {_names(stuck)} can never be approved '
                          '(no one approves their own request, and too few other approvers are left)',
                          rule.source)  # fmt: skip


def _duration_cap(policy: Policy, max_duration: int) -> Iterator[Finding]:
    for rule in policy.rules:
        if rule.max_duration > max_duration:
            longest = format_duration(rule.max_duration)
            yield Finding('duration-cap', f'rule `{rule.name}` allows grants of up to {longest}, '
                          f'over the cap of {format_duration(max_duration)}', rule.source)  # fmt: skip


def _auto_approve_privileged(policy: Policy) -> Iterator[Finding]:
    for rule in policy.rules:
        if not rule.auto_approve:
            continue
        roles = {role for _, role in _covered(policy, rule) if PRIVILEGED_ROLE.search(role)}
        if roles:
            yield Finding('auto-approve-privileged', f'rule `{rule.name}` approves privileged role(s) '
                          f'{_names(roles)} automatically, with no person in the loop', rule.source)  # fmt: skip


def _trigger_includes(outer: str | Mapping[str, Any], inner: str | Mapping[str, Any]) -> bool:
    """True when every request that ``inner`` matches is also matched by ``outer``."""
    if outer == 'any':
        return True
    if isinstance(outer, str):
        return outer == inner if isinstance(inner, str) else outer == 'pipeline'
    if isinstance(inner, str):
        return False
    return all(key in inner and str(inner[key]) == str(want) for key, want in outer.items())


def _shadowed(policy: Policy) -> Iterator[Finding]:
    for index, rule in enumerate(policy.rules):
        pairs = _covered(policy, rule)
        wanted = None if rule.requesters is None else policy.resolve(rule.requesters)
        if not pairs or wanted == frozenset():
            continue  # covers nothing, or no one: dead for another reason, not shadowed
        earlier = [e for e in policy.rules[:index] if _trigger_includes(e.trigger, rule.trigger)]
        by: list[str] = []
        for resource, role in pairs:
            covering = [e for e in earlier if (e.resources is None or resource in e.resources)
                        and (e.roles is None or role in e.roles)]  # fmt: skip
            if not _requesters_include(policy, covering, wanted):
                break
            by.extend(e.name for e in covering if e.name not in by)
        else:
            names = ', '.join(f'`{n}`' for n in by)
            yield Finding('shadowed', f'rule `{rule.name}` never decides anything: earlier rule(s) {names} match '
                          'every request it covers first', rule.source)  # fmt: skip


def _requesters_include(policy: Policy, rules: list[Rule], wanted: frozenset[str] | None) -> bool:
    """Do ``rules`` together match everyone ``wanted`` stands for (None: everyone)?"""
    if any(r.requesters is None for r in rules):
        return True
    if wanted is None:
        return False
    have: set[str] = set()
    for r in rules:
        have |= policy.resolve(r.requesters)
    return wanted <= have


def _secret_settings(settings: Mapping[str, Any], prefix: str = '') -> Iterator[str]:
    for key, value in settings.items():
        path = f'{prefix}{key}'
        if isinstance(value, Mapping):
            yield from _secret_settings(value, f'{path}.')
        elif SECRET_KEY.search(str(key)) and isinstance(value, str) and value.strip() and not value.startswith('env:'):
            yield path


def _inline_secret(policy: Policy) -> Iterator[Finding]:
    for res in policy.resources.values():
        declared = BUILTIN_SECRET_SETTINGS.get(res.provider)
        paths = _secret_settings(res.settings)
        if declared is not None:  # env:NAME works in those settings only: never advise it for another
            paths = (path for path in paths if path in declared)
        for path in paths:
            yield Finding('inline-secret', f'resource `{res.name}`: setting `{path}` looks secret and is written '
                          f'inline; write `env:NAME` and set NAME in the environment', res.source)  # fmt: skip


def _break_glass_without_reason(policy: Policy) -> Iterator[Finding]:
    for rule in policy.rules:
        if rule.break_glass and not rule.require_reason:
            yield Finding('break-glass-without-reason', f'rule `{rule.name}` has `break_glass: true` without '
                          '`require_reason: true` (a reason is demanded anyway: say so)', rule.source)  # fmt: skip


def _open_scope(policy: Policy) -> Iterator[Finding]:
    for rule in policy.rules:
        if rule.requesters is None:
            yield Finding('open-requesters', f'rule `{rule.name}` has no `requesters`: everyone in the workspace '
                          'may request', rule.source)  # fmt: skip
        if rule.resources is None:
            yield Finding('open-resources', f'rule `{rule.name}` has no `resources`: it covers every resource, '
                          'including ones added later', rule.source)  # fmt: skip


def _nested_quantifier(policy: Policy) -> Iterator[Finding]:
    for rule in policy.rules:
        if rule.ticket_pattern and ambiguous_repeat(rule.ticket_pattern):
            yield Finding('nested-quantifier', f'rule `{rule.name}`: `ticket_pattern` `{rule.ticket_pattern}` '
                          'repeats a part that itself repeats, and one repetition can end with what the next begins '
                          'with (as in `(x+)+`), so a word splits into repetitions in exponentially many ways. A '
                          "backtracking engine (Python's re, most tools) tries them all; jit's matching is linear, "
                          'but say the same without the nesting (e.g. `^[A-Z0-9]+(-[A-Z0-9]+)*$`)',
                          rule.source)  # fmt: skip


def _approvers_without_address(policy: Policy) -> Iterator[Finding]:
    """Approvers asked by email (or in Teams, whose page emails a personal link) need an address in the policy.

    jit sends to the addresses the policy holds; an approver written only as a Slack user ID gets no email
    and cannot decide from Teams. The same person may also be named by email elsewhere in the step, which
    lint cannot know (identifiers are compared as written): the finding names the IDs, for the author to judge.
    """
    for rule in policy.rules:
        if not rule.asks_email and not rule.teams_channels:
            continue
        approvers = policy.rule_approvers(rule)
        ids = {a for a in approvers if '@' not in a and not a.startswith('pipeline:')}
        if not ids:
            continue
        if rule.asks_email:
            yield Finding('email-approver-without-address', f'rule `{rule.name}` asks by email, but approver(s) '
                          f'{_names(ids)} are Slack user IDs with no address in the policy: they get no email (name '
                          'them by email, in the rule or their group)', rule.source)  # fmt: skip
        else:
            channels = ', '.join(rule.teams_channels)
            yield Finding('teams-without-email', f'rule `{rule.name}` asks in Teams ({channels}), where an approver '
                          'decides through a personal link jit sends to their email, but approver(s) '
                          f'{_names(ids)} are Slack user IDs with no address in the policy: they cannot decide '
                          'from Teams (name them by email, in the rule or their group)', rule.source)  # fmt: skip
