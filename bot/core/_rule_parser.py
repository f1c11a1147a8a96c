"""One ``requests`` entry of a policy file to a :class:`~bot.core.policy.Rule`, with ``file:line`` problems.

Split from the builder (:mod:`bot.core._policy_builder`) because a rule has the most keys; the builder
owns the files' definitions, the groups and the cross-references, and hands each rule here with the
expanded groups. Whether a ``ticket_pattern`` can be matched is said by :mod:`bot.core._ticket_pattern`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from itertools import islice
from typing import TYPE_CHECKING, Any

from bot.core._ticket_pattern import ticket_pattern_problem
from bot.core.characters import control_in
from bot.core.durations import DurationError, parse_duration
from bot.core.policy import ASK_EMAIL, ASK_SLACK, ASK_TEAMS, Rule, Source, Step

if TYPE_CHECKING:
    from bot.core._policy_builder import Builder
    from bot.core._yaml_marks import MarkedDocument

RULE_KEYS = (
    'name', 'description', 'resources', 'roles', 'requesters', 'trigger', 'approvers', 'approvals', 'steps',
    'timeout', 'default_duration', 'min_duration', 'revoke_on_idle', 'require_reason', 'ticket_pattern',
    'pending_timeout', 'notify', 'ask', 'auto_approve', 'break_glass', 'self_extend', 'require_deny_reason',
)  # fmt: skip
BOOL_KEYS = ('require_reason', 'auto_approve', 'break_glass', 'require_deny_reason')
TRIGGERS = ('slack', 'pipeline', 'any')
#: What ``ask`` may list, as problems say it.
ASK_VALUES = f'{ASK_SLACK}, {ASK_EMAIL} or {ASK_TEAMS}:NAME (a channel of `teams`)'
#: When a rule says nothing: an hour is long enough to debug and short enough to matter.
DEFAULT_TIMEOUT = 3600
#: More approvals than this is a typo (or a number of thousands of digits), not a quorum anyone can reach.
MAX_APPROVALS = 100
#: How many of the defined names a problem lists ("unknown group `x` (defined groups: a, b, … and 40 more)").
LISTED = 10


def listed(names: Collection[str], limit: int = LISTED) -> str:
    """The first ``limit`` of ``names`` and how many more: what a problem shows of what is defined.

    Every unknown reference is a problem of its own: listing all that is defined in each would make
    thousands of references to thousands of names gigabytes of problems, from a policy of a few hundred KB.
    """
    shown = ', '.join(islice(names, limit))
    return shown + (f', … and {len(names) - limit} more' if len(names) > limit else '')


class RuleParser:
    """Parses and checks one rule; problems go to the builder, the rule comes back (or None)."""

    def __init__(
        self, builder: Builder, raw: dict[str, Any], doc: MarkedDocument, path: tuple[Any, ...],
        groups: Mapping[str, frozenset[str]],
    ) -> None:  # fmt: skip
        self.b, self.raw, self.doc, self.path, self.groups = builder, raw, doc, path, groups
        self.ok = True

    def err(self, key: str | tuple[Any, ...], message: str, *, value: bool | None = None) -> None:
        """A problem at ``key`` of the rule: its key, or its value when the key is not one of the rule's own."""
        sub = key if isinstance(key, tuple) else (key,)
        at_value = (bool(sub) and sub[-1] not in self.raw) if value is None else value
        self.b.err(self.doc, (*self.path, *sub), message, value=at_value)
        self.ok = False

    def parse(self) -> Rule | None:
        raw = self.raw
        name = f'rule-{self.path[-1] + 1}@{self.doc.file}'
        if isinstance(raw.get('name'), str) and control_in(raw['name'], allowed=''):
            self.err('name', '`name` is one line of text: the name the rule is known by', value=True)
        elif isinstance(raw.get('name'), str) and raw['name'].strip():
            name = raw['name']
        elif 'name' in raw:
            self.err('name', '`name` must be text: the name the rule is known by')
        for key in raw:
            if key not in RULE_KEYS:
                self.err(key, f'unknown key `{key}` in rule `{name}` (expected one of: {", ".join(RULE_KEYS)})')
        for key in BOOL_KEYS:
            if key in raw and not isinstance(raw[key], bool):
                self.err(key, f'`{key}` must be true or false')
        resources = self.names('resources', self.b.resources, 'resource')
        roles = self.names('roles', None, 'role')
        if roles is not None and (resources is None or resources <= self.b.resources.keys()):  # unknown: said above
            pool = [self.b.resources[r] for r in resources] if resources is not None else self.b.resources.values()
            known = {role for res in pool for role in res.roles}
            unknown = sorted(roles - known)
            roles_known = listed(sorted(known)) if unknown else ''
            for role in unknown:
                self.err('roles', f'no resource of rule `{name}` has a role `{role}` (roles: {roles_known})')
        requesters = self.refs('requesters')
        steps = self.steps(name)
        timeout = self.duration('timeout') or DEFAULT_TIMEOUT
        default = self.duration('default_duration') or min(3600, timeout)
        if 'default_duration' in raw and default > timeout:
            self.err('default_duration', f'`default_duration` is longer than `timeout` in rule `{name}`')
        trigger = self.trigger()
        pattern = raw.get('ticket_pattern')
        if pattern is not None:
            problem = ticket_pattern_problem(pattern, name)
            if problem is not None:
                self.err('ticket_pattern', problem)
        notify = raw.get('notify', [])
        if isinstance(notify, str):
            notify = [notify]
        if not isinstance(notify, list) or not all(isinstance(n, str) for n in notify):
            self.err('notify', '`notify` must be a list of channels')
            notify = []
        ask = self.ask()
        idle = raw.get('revoke_on_idle')
        idle_value: int | bool | None = idle if isinstance(idle, bool) else self.duration('revoke_on_idle')
        if not self.ok:
            return None
        return Rule(
            name=name, resources=resources, roles=roles, requesters=requesters, trigger=trigger, steps=steps,
            max_duration=timeout, default_duration=default, min_duration=self.duration('min_duration') or 10,
            require_reason=bool(raw.get('require_reason', False)), ticket_pattern=pattern,
            pending_timeout=self.duration('pending_timeout'), notify=tuple(notify),
            auto_approve=bool(raw.get('auto_approve', False)), break_glass=bool(raw.get('break_glass', False)),
            self_extend=self.duration('self_extend'), revoke_on_idle=idle_value,
            require_deny_reason=bool(raw.get('require_deny_reason', False)), ask=ask,
            source=Source(self.doc.file, *self.doc.pos(self.path)),
        )  # fmt: skip

    def names(self, key: str, known: Mapping[str, Any] | None, what: str) -> frozenset[str] | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.err(key, f'`{key}` must be a list of {what} names')
            return None
        for i, item in enumerate(value):
            if known is not None and item not in known:
                self.err((key, i), f'unknown {what} `{item}` (defined: {listed(known) or "none"})')
        return frozenset(value)

    def refs(self, key: str, raw: Any = None, path: tuple[Any, ...] | None = None) -> tuple[str, ...] | None:
        value = self.raw.get(key) if raw is None else raw
        where = path or (key,)
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.err(where, f'`{key}` must be a list of emails, Slack user IDs, group:NAME or pipeline:NAME')
            return None
        before = len(self.b.problems)
        for i, ref in enumerate(value):
            self.b.check_ref(ref, self.doc, (*self.path, *where, i), self.groups)
        if len(self.b.problems) > before:
            self.ok = False
        return tuple(str(v) for v in value)

    def steps(self, name: str) -> tuple[Step, ...]:
        raw = self.raw
        if raw.get('auto_approve') is True:
            if 'approvers' in raw or 'steps' in raw:
                self.err('auto_approve', f'rule `{name}` has `auto_approve` and approvers: choose one')
            return ()
        if 'steps' in raw and 'approvers' in raw:
            self.err('steps', f'rule `{name}` has both `steps` and `approvers`: put approvers inside the steps')
            return ()
        if 'steps' in raw:
            if not isinstance(raw['steps'], list) or not raw['steps']:
                self.err('steps', '`steps` must be a list of {approvers: [...], approvals: N}')
                return ()
            out = []
            for i, step in enumerate(raw['steps']):
                if not isinstance(step, dict) or 'approvers' not in step:
                    self.err(('steps', i), 'each step needs `approvers` (and optionally `approvals`)')
                    continue
                for key in step:
                    if key not in ('approvers', 'approvals', 'name'):
                        self.err(('steps', i, key), f'unknown key `{key}` in a step (expected approvers, approvals)')
                approvers = self.refs('approvers', step['approvers'], ('steps', i, 'approvers')) or ()
                out.append(Step(approvers, self.count(('steps', i, 'approvals'), step.get('approvals', 1))))
            return tuple(out)
        if 'approvers' not in raw:
            if not raw.get('break_glass'):
                self.err((), f'rule `{name}` has no `approvers` (add approvers, steps or auto_approve: true)')
            return ()
        approvers = self.refs('approvers') or ()
        return (Step(approvers, self.count(('approvals',), raw.get('approvals', 1))),)

    def count(self, path: tuple[Any, ...], value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_APPROVALS:
            self.err(path, f'`approvals` must be a whole number from 1 to {MAX_APPROVALS}')
            return 1
        return value

    def duration(self, key: str) -> int | None:
        value = self.raw.get(key)
        if value is None or (isinstance(value, bool) and key == 'revoke_on_idle'):
            return None
        try:
            return parse_duration(value)
        except (DurationError, ValueError, OverflowError) as exc:
            self.err(key, f'`{key}`: {str(exc)[:200]}')
            return None

    def ask(self) -> tuple[str, ...]:
        """Where the approvers are asked: ``slack`` (the default), ``email``, ``teams:NAME``; each once, in order."""
        if 'ask' not in self.raw:
            return (ASK_SLACK,)
        value = self.raw['ask']
        single = isinstance(value, str)
        items = [value] if single else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            self.err('ask', f'`ask` must be a list of where approvers are asked: {ASK_VALUES}')
            return (ASK_SLACK,)
        if not items:
            self.err('ask', '`ask` is empty: list where approvers are asked, or leave it out for Slack only')
            return (ASK_SLACK,)
        for i, item in enumerate(items):
            where = ('ask',) if single else ('ask', i)
            channel = item[len(ASK_TEAMS) + 1 :] if item.startswith(ASK_TEAMS + ':') else None
            if item in (ASK_SLACK, ASK_EMAIL):
                continue
            if item == ASK_TEAMS or channel == '':
                self.err(where, f'`{item}` names no Teams channel: write {ASK_TEAMS}:NAME, NAME a channel of `teams` '
                                f'(defined: {listed(self.b.teams) or "none"})', value=True)  # fmt: skip
            elif channel is not None and channel not in self.b.teams:
                self.err(where, f'unknown Teams channel `{channel}` (defined in `teams`: '
                                f'{listed(self.b.teams) or "none"})', value=True)  # fmt: skip
            elif channel is None:
                self.err(where, f'`ask` cannot ask by `{item}`: expected {ASK_VALUES}', value=True)
        return tuple(dict.fromkeys(items))

    def trigger(self) -> str | dict[str, Any]:
        value = self.raw.get('trigger', 'slack')
        if isinstance(value, str) and value in TRIGGERS:
            return value
        if isinstance(value, dict) and isinstance(value.get('pipeline'), str):
            return {str(k): v for k, v in value.items()}
        self.err('trigger', f'`trigger` must be one of {", ".join(TRIGGERS)} or {{pipeline: EVENT, ...conditions}}')
        return 'slack'
