"""What a policy change does to effective access, in words: who gains or loses what, and on which terms.

Core layer, pure: a function from two loaded policies to a sorted list of :class:`Change`.
``jit policy diff`` prints it (as text or as a pull-request comment) and exits 3 when anything
widens access, so CI can ask for a security review. The comparison is on effective access, not
on the YAML text: for every (resource, role), every way a request can arrive (Slack, a pipeline,
each pipeline event a rule names) and every identity either policy mentions, plus "anyone" for
rules without requesters, it finds the rule that decides in each policy (the first that matches)
and compares what that rule lets happen. Reordering keys or renaming a group without changing
its members is therefore no change; adding one person to a group reads as one line per thing
they may now request. Who is decided by which rule, on what terms, is worked out in
:mod:`bot.core._effective_access`; this module compares and words it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.core._effective_access import (
    ANYONE,
    Channel,
    Terms,
    channels,
    deciders,
    people_named,
    role_pairs,
    terms_of,
)
from bot.core.durations import format_duration
from bot.core.policy import Policy

#: Every kind of change, in the order changes about the same subject are listed.
KINDS = (
    'resource', 'role', 'provider', 'settings', 'access', 'auto_approve', 'break_glass', 'self_approval',
    'approvers', 'quorum', 'ask', 'duration', 'conditions', 'admins',
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Change:
    """One difference in effective access.

    Attributes:
        kind: one of :data:`KINDS`.
        widens: True when more people may get access, or get it more easily, for longer, or with more effect.
        message: the change in words, naming the people and the deciding rule.
        subject: what it is about: ``prod-db write``, ``prod-db`` or ``admins``.
    """

    kind: str
    widens: bool
    message: str
    subject: str


@dataclass
class _Collector:
    """Facts about one (subject, channel), grouped so that people affected alike make one line."""

    subject: str
    channel: Channel
    #: (kind, widens, text after the names) -> who.
    who: dict[tuple[str, bool, str], set[str]] = field(default_factory=dict)
    #: (kind, widens, text, rule) -> the requesters it applies to.
    terms: dict[tuple[str, bool, str, str], set[str]] = field(default_factory=dict)
    #: (widens, text after the approvers' names, rule) -> approver -> the requesters it applies to.
    approvers: dict[tuple[bool, str, str], dict[str, set[str]]] = field(default_factory=dict)
    #: Rule (as messages name it) -> the requesters it decides in both policies: a change of terms that
    #: applies to all of them names none.
    everyone: dict[str, set[str]] = field(default_factory=dict)

    def add_who(self, kind: str, widens: bool, text: str, identity: str) -> None:
        self.who.setdefault((kind, widens, text), set()).add(identity)

    def addterms_of(self, kind: str, widens: bool, text: str, rule: str, identity: str) -> None:
        self.terms.setdefault((kind, widens, f'{text} (rule {rule})', rule), set()).add(identity)

    def add_approvers(self, widens: bool, text: str, rule: str, approvers: frozenset[str], identity: str) -> None:
        by = self.approvers.setdefault((widens, f'{text} (rule {rule})', rule), {})
        for approver in approvers:
            by.setdefault(approver, set()).add(identity)

    def changes(self) -> Iterable[Change]:
        for (kind, widens, text), ids in self.who.items():
            yield Change(kind, widens, f'{self._names(ids)} {text}', self.subject)
        for (kind, widens, text, rule), ids in self.terms.items():
            yield Change(kind, widens, f'{text}{self._for(ids, rule)}', self.subject)
        for (widens, text, rule), by_approver in self.approvers.items():
            grouped: dict[frozenset[str], set[str]] = {}
            for approver, asking in by_approver.items():
                grouped.setdefault(frozenset(asking), set()).add(approver)
            for requesters, approvers in grouped.items():
                message = f'{_join(approvers)} {text}{self._for(set(requesters), rule)}'
                yield Change('approvers', widens, message, self.subject)

    def _names(self, ids: set[str]) -> str:
        return self.channel.anyone if ANYONE in ids else _join(ids)

    def _for(self, ids: set[str], rule: str) -> str:
        everyone = self.everyone.get(rule, set())
        if ids >= everyone:
            return ''
        if ANYONE in ids:
            return f' for requests by {self.channel.anyone} except {_join(everyone - ids)}'
        return f' for requests by {_join(ids)}'


def diff_policies(old: Policy, new: Policy) -> list[Change]:
    """Every difference in effective access between ``old`` and ``new``, widening changes first.

    Args:
        old: the policy before the change.
        new: the policy after it.

    Returns:
        The changes sorted by (widens first, subject, kind, message); empty when effective access is the same.
    """
    changes = [*_resource_changes(old, new), *_admin_changes(old, new)]
    people = people_named(old) | people_named(new) | {ANYONE}
    for resource, role in role_pairs(old, new):
        subject = f'{resource} {role}'
        generic: dict[str, tuple[Terms | None, Terms | None]] = {}
        for channel in channels(old, new):
            ids = {p for p in people if channel.admits(p)}
            olds = deciders(old, resource, role, channel, ids)
            news = deciders(new, resource, role, channel, ids)
            collector = _Collector(subject, channel)
            for identity in sorted(ids):
                before, after = olds.get(identity), news.get(identity)
                pair = (terms_of(old, before, identity), terms_of(new, after, identity))
                if channel.context is None:
                    generic[identity] = pair
                elif generic.get(identity) == pair:
                    continue  # the same as for any pipeline: already said once
                _compare(collector, identity, *pair)
            changes.extend(collector.changes())
    return sorted(changes, key=lambda c: (not c.widens, c.subject, KINDS.index(c.kind), c.message))


def _compare(out: _Collector, identity: str, old: Terms | None, new: Terms | None) -> None:
    """Record what changes for ``identity`` asking through ``out.channel``."""
    subject, via = out.subject, out.channel.via
    if old is None and new is None:
        return
    if old is None and new is not None:
        how = ', approved automatically' if new.auto_approve else ', break-glass' if new.break_glass else ''
        out.add_who('access', True, f'may now request {subject}{via} (rule {new.rule}{how})', identity)
        if new.self_approval:
            out.add_who('self_approval', True, f'may both request and approve {subject}{via}, and one approval '
                        f'decides (rule {new.rule})', identity)  # fmt: skip
        return
    if new is None and old is not None:
        out.add_who('access', False, f'may no longer request {subject}{via} (was rule {old.rule})', identity)
        return
    assert old is not None and new is not None
    rule = new.rule if new.rule == old.rule else f'{new.rule}, was {old.rule}'
    out.everyone.setdefault(rule, set()).add(identity)
    if old.comparable() == new.comparable():
        return
    at = f'{subject}{via}'
    if not old.auto_approve and not new.auto_approve:
        for approvers, widens, verb in ((new.approvers - old.approvers, True, 'may now approve'),
                                        (old.approvers - new.approvers, False, 'may no longer approve')):  # fmt: skip
            if approvers:
                out.add_approvers(widens, f'{verb} {at}', rule, approvers, identity)
        if new.approvals != old.approvals:
            out.addterms_of('quorum', new.approvals < old.approvals, f'{at} needs {_approvals(new.approvals)} instead '
                          f'of {old.approvals}', rule, identity)  # fmt: skip
        for widens, text in _links(old, new):
            out.addterms_of('ask', widens, f'{at} {text}', rule, identity)
    if new.auto_approve != old.auto_approve:
        now = 'is now' if new.auto_approve else 'is no longer'
        out.addterms_of('auto_approve', new.auto_approve, f'{at} {now} approved automatically', rule, identity)
    if new.break_glass != old.break_glass:
        now = 'now allows' if new.break_glass else 'no longer allows'
        out.addterms_of('break_glass', new.break_glass, f'{at} {now} break-glass self-approval', rule, identity)
    if new.self_approval != old.self_approval:
        text = (f'may both request and approve {at}, and one approval decides (rule {rule})' if new.self_approval
                else f'may no longer both request and approve {at} (rule {rule})')  # fmt: skip
        out.add_who('self_approval', new.self_approval, text, identity)
    if new.max_duration != old.max_duration:
        longest = f'{format_duration(new.max_duration)} instead of {format_duration(old.max_duration)}'
        longer = new.max_duration > old.max_duration
        out.addterms_of('duration', longer, f'{at} may be granted for up to {longest}', rule, identity)
    for widens, text in _conditions(old, new):
        out.addterms_of('conditions', widens, f'{at} {text}', rule, identity)


def _links(old: Terms, new: Terms) -> Iterable[tuple[bool, str]]:
    """Ways to decide by link added (widening: a link decides as the approver it was sent to, whoever follows it,
    so a forwarded one lets someone else decide) and removed."""
    before, after = dict(old.links), dict(new.links)
    for key in sorted(after.keys() - before.keys()):
        yield True, (f'may now be approved or denied {after[key]}: a link decides as the approver it was sent to, '
                     'whoever follows it')  # fmt: skip
    for key in sorted(before.keys() - after.keys()):
        yield False, f'may no longer be approved or denied {before[key]}'


def _conditions(old: Terms, new: Terms) -> Iterable[tuple[bool, str]]:
    """Changes to what a request must carry (reason, ticket) and to extending without approval."""
    if old.require_reason != new.require_reason:
        yield (False, 'now requires a reason') if new.require_reason else (True, 'no longer requires a reason')
    if old.ticket_pattern != new.ticket_pattern:
        if new.ticket_pattern is None:
            yield True, 'no longer requires a ticket'
        elif old.ticket_pattern is None:
            yield False, f'now requires a ticket matching `{new.ticket_pattern}`'
        else:  # which tickets the new pattern admits cannot be known in general: assume it may admit more
            yield True, f'requires a ticket matching `{new.ticket_pattern}` instead of `{old.ticket_pattern}`'
    if (old.self_extend or 0) != (new.self_extend or 0):
        before, after = old.self_extend or 0, new.self_extend or 0
        longest = f'{format_duration(after)} instead of {format_duration(before)}'
        yield after > before, f'may be extended without approval up to {longest}'


def _resource_changes(old: Policy, new: Policy) -> Iterable[Change]:
    for name in sorted(old.resources.keys() | new.resources.keys()):
        before, after = old.resources.get(name), new.resources.get(name)
        if before is None and after is not None:
            yield Change('resource', True, f'resource {name} added (provider {after.provider}, roles '
                         f'{", ".join(sorted(after.roles))})', name)  # fmt: skip
            continue
        if after is None and before is not None:
            yield Change('resource', False, f'resource {name} removed', name)
            continue
        assert before is not None and after is not None
        if before.provider != after.provider:
            yield Change('provider', True, f'provider of {name} changed from {before.provider} to {after.provider}',
                         name)  # fmt: skip
        if dict(before.settings) != dict(after.settings):
            yield Change('settings', True, f'settings of {name} changed', name)
        for role in sorted(before.roles.keys() | after.roles.keys()):
            subject = f'{name} {role}'
            if role not in before.roles:
                yield Change('role', True, f'role {subject} added', subject)
            elif role not in after.roles:
                yield Change('role', False, f'role {subject} removed', subject)
            elif dict(before.roles[role].params) != dict(after.roles[role].params):
                yield Change('settings', True, f'parameters of role {subject} changed', subject)


def _admin_changes(old: Policy, new: Policy) -> Iterable[Change]:
    if added := new.admins - old.admins:
        yield Change('admins', True, f'{_join(added)} may now revoke any grant and read the whole audit trail (admins)',
                     'admins')  # fmt: skip
    if removed := old.admins - new.admins:
        yield Change('admins', False, f'{_join(removed)} are no longer admins', 'admins')


def _approvals(count: int) -> str:
    return f'{count} approval' if count == 1 else f'{count} approvals'


def _join(ids: Iterable[str]) -> str:
    return ', '.join(sorted(ids))
