"""The definitions of every policy file collected, then checked against each other, into a ``Policy``.

Part of the loader (:func:`bot.core.policy_loader.build_policy` drives it): each file's groups, admins,
resources, Teams channels and rules are collected with their places; then groups are expanded, every reference checked
and each rule handed to :mod:`bot.core._rule_parser`. Every problem is ``file:line:column: what``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, TypeVar

from bot.core._rule_parser import RuleParser, listed
from bot.core._yaml_marks import MarkedDocument
from bot.core.policy import Policy, Resource, Role, Rule, Source, TeamsChannel

#: Groups may name groups, which may name groups: at most this many levels.
MAX_GROUP_DEPTH = 32
#: The longest problem, in characters. A problem quotes what it is about (a rule's name, a key): one name
#: of 100,000 characters quoted by 5,000 problems would otherwise be gigabytes, logged and posted.
MAX_PROBLEM_CHARS = 1000

_T = TypeVar('_T')

TOP_KEYS = ('groups', 'admins', 'resources', 'teams', 'requests')
RESOURCE_KEYS = ('description', 'provider', 'settings', 'roles')
TEAMS_KEYS = ('webhook',)
#: ``env:NAME`` as a Teams webhook must be written: the name of an environment variable.
ENV_REF = re.compile(r'^env:[A-Za-z_][A-Za-z0-9_]*$')
SLACK_ID = re.compile(r'^[UW][A-Z0-9]{2,}$')
NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')


class Builder:
    """Collects definitions from every file, then checks references across them."""

    def __init__(self, providers: Collection[str], secret_settings: Mapping[str, Collection[str]]) -> None:
        """Build with the provider names a resource may use and, for each, the settings it declares secret."""
        self.providers = providers
        self.secret_settings = secret_settings
        self.problems: list[str] = []
        self.group_defs: dict[str, tuple[list[Any], MarkedDocument, tuple[Any, ...]]] = {}
        self.resources: dict[str, Resource] = {}
        self.teams: dict[str, TeamsChannel] = {}
        self.admins: list[tuple[Any, MarkedDocument, tuple[Any, ...]]] = []
        self.raw_rules: list[tuple[dict[str, Any], MarkedDocument, tuple[Any, ...]]] = []

    def err(self, doc: MarkedDocument, path: tuple[Any, ...], message: str, *, value: bool = False) -> None:
        if len(message) > MAX_PROBLEM_CHARS:
            message = message[: MAX_PROBLEM_CHARS - 1] + '…'
        self.problems.append(f'{doc.where(path, value=value)}: {message}')

    def guarded(self, doc: MarkedDocument, path: tuple[Any, ...], work: Callable[..., _T], *args: Any) -> _T | None:
        """``work(*args)``; an exception it raises becomes a problem at ``path``, so no input escapes as one.

        Every check above reports its own problem; this is the promise that a check overlooked for some
        input still ends as a ``file:line:column`` problem, and the last good policy stays.
        """
        try:
            return work(*args)
        except Exception as exc:  # any failure at all: the contract is a problem, never a traceback
            self.err(doc, path, f'this could not be loaded ({type(exc).__name__}: {str(exc)[:200]})')
            return None

    def collect(self, doc: MarkedDocument) -> None:
        if doc.data is None:
            return
        if not isinstance(doc.data, dict):
            self.err(doc, (), 'a policy file must be a mapping with groups, admins, resources, teams, requests')
            return
        for key in doc.data:
            if key not in TOP_KEYS:
                self.err(doc, (key,), f'unknown key `{key}` (expected one of: {", ".join(TOP_KEYS)})')
        for name, members in _mapping(self, doc, ('groups',)).items():
            path = ('groups', name)
            if name in self.group_defs:
                other = self.group_defs[name]
                self.err(doc, path, f'group `{name}` is already defined at {other[1].where(other[2])}')
            elif not isinstance(members, list) or not all(isinstance(m, str) for m in members):
                self.err(doc, path, f'group `{name}` must be a list of emails, Slack user IDs or group:NAME')
            else:
                self.group_defs[str(name)] = (members, doc, path)
        admins = doc.data.get('admins', [])
        if not isinstance(admins, list):
            self.err(doc, ('admins',), '`admins` must be a list', value=True)
        else:
            self.admins.extend((a, doc, ('admins', i)) for i, a in enumerate(admins))
        for name, spec in _mapping(self, doc, ('resources',)).items():
            self.collect_resource(doc, str(name), spec)
        for name, spec in _mapping(self, doc, ('teams',)).items():
            self.collect_teams(doc, str(name), spec)
        requests = doc.data.get('requests', [])
        if not isinstance(requests, list):
            self.err(doc, ('requests',), '`requests` must be a list of rules', value=True)
            return
        for i, raw in enumerate(requests):
            if not isinstance(raw, dict):
                self.err(doc, ('requests', i), 'a rule must be a mapping (name, resources, approvers, ...)', value=True)
            else:
                self.raw_rules.append((raw, doc, ('requests', i)))

    def collect_resource(self, doc: MarkedDocument, name: str, spec: Any) -> None:
        path = ('resources', name)
        if name in self.resources:
            self.err(doc, path, f'resource `{name}` is already defined at {self.resources[name].source}')
            return
        if not isinstance(spec, dict):
            self.err(doc, path, f'resource `{name}` must be a mapping with provider and roles')
            return
        for key in spec:
            if key not in RESOURCE_KEYS:
                self.err(doc, (*path, key), f'unknown key `{key}` in resource `{name}` '
                                            f'(expected one of: {", ".join(RESOURCE_KEYS)})')  # fmt: skip
        provider = spec.get('provider')
        if provider is None:
            self.err(doc, path, f'resource `{name}` has no `provider`')
        elif not isinstance(provider, str):
            self.err(doc, (*path, 'provider'), f'`provider` of resource `{name}` must be a name, e.g. webhook')
        elif provider not in self.providers:
            self.err(doc, (*path, 'provider'), f'unknown provider `{provider}` '
                                               f'(known: {", ".join(sorted(self.providers))})')  # fmt: skip
        settings = spec.get('settings') or {}
        if not isinstance(settings, dict):
            self.err(doc, (*path, 'settings'), '`settings` must be a mapping', value=True)
            settings = {}
        if isinstance(provider, str) and provider in self.providers:
            self.check_env(doc, path, provider, settings)
        description = spec.get('description')
        if description is not None and not isinstance(description, str):
            self.err(doc, (*path, 'description'), f'`description` of resource `{name}` must be text')
        roles = self.parse_roles(doc, path, spec.get('roles'))
        self.resources[name] = Resource(name, str(provider), roles, settings, str(description or ''),
                                        Source(doc.file, *doc.pos(path)))  # fmt: skip

    def collect_teams(self, doc: MarkedDocument, name: str, spec: Any) -> None:
        """One Teams channel rules may ask in (``ask: [teams:NAME]``): ``{webhook: env:NAME}``.

        The webhook URL is a secret (whoever has it posts in the channel), so it is only ever ``env:NAME``, and
        a problem never quotes what was written in its place.
        """
        path = ('teams', name)
        if name in self.teams:
            self.err(doc, path, f'Teams channel `{name}` is already defined at {self.teams[name].source}')
            return
        source = Source(doc.file, *doc.pos(path))
        self.teams[name] = TeamsChannel(name, '', source)  # known even when wrong: one problem, not a cascade
        if not NAME.match(name):
            self.err(doc, path, f'`{name}` is not a valid Teams channel name (letters, digits, `_`, `.`, `-`; '
                                'rules name it as teams:NAME)')  # fmt: skip
            return
        if not isinstance(spec, dict):
            self.err(doc, path, f'Teams channel `{name}` must be a mapping: {{webhook: env:NAME}}')
            return
        for key in spec:
            if key not in TEAMS_KEYS:
                self.err(doc, (*path, key), f'unknown key `{key}` in Teams channel `{name}` '
                                            f'(expected: {", ".join(TEAMS_KEYS)})')  # fmt: skip
        webhook = spec.get('webhook')
        if 'webhook' not in spec:
            self.err(doc, path, f'Teams channel `{name}` has no `webhook` (write webhook: env:NAME)')
        elif not isinstance(webhook, str) or not webhook.startswith('env:'):
            self.err(doc, (*path, 'webhook'), f'`webhook` of Teams channel `{name}` must be written env:NAME: the '
                     "webhook's URL is a secret (whoever has it can post in the channel), so it is read from the "
                     "environment, never written in a policy file", value=True)  # fmt: skip
        elif not ENV_REF.match(webhook):
            self.err(doc, (*path, 'webhook'), f'`webhook` of Teams channel `{name}`: `{webhook[:80]}` does not name '
                     'an environment variable (env: and letters, digits, `_`)', value=True)  # fmt: skip
        else:
            self.teams[name] = TeamsChannel(name, webhook, source)

    def check_env(self, doc: MarkedDocument, path: tuple[Any, ...], provider: str, settings: Mapping[str, Any]) -> None:
        """``env:NAME`` only in a setting ``provider`` declares secret: any other may be shown to the requester."""
        secret = self.secret_settings.get(provider) or ()
        for key, value in settings.items():
            if isinstance(value, str) and value.startswith('env:') and key not in secret:
                self.err(doc, (*path, 'settings', key), f'`{key}` of resource `{path[-1]}` is written `{value[:80]}`, '
                         f'but the {provider} provider reads the environment only for its secret settings '
                         f'({", ".join(sorted(secret)) or "none"}): a setting that is not secret may be shown to '
                         'requesters, so write its value here', value=True)  # fmt: skip

    def parse_roles(self, doc: MarkedDocument, path: tuple[Any, ...], raw: Any) -> dict[str, Role]:
        if isinstance(raw, list) and raw and all(isinstance(r, str) for r in raw):
            return {r: Role(r) for r in raw}
        if isinstance(raw, dict) and raw:
            roles = {}
            for role, params in raw.items():
                if params is not None and not isinstance(params, dict):
                    self.err(doc, (*path, 'roles', role), f'role `{role}` must map to provider parameters or nothing')
                roles[str(role)] = Role(str(role), params or {})
            return roles
        self.err(
            doc,
            (*path, 'roles') if raw is not None else path,
            f'resource `{path[-1]}` needs `roles`: a list of names or a mapping of names to parameters',
        )
        return {}

    def finish(self, version: str, files: tuple[str, ...]) -> Policy:
        groups = self.expand_groups()
        admins = _union(self.check_ref(ref, doc, path, groups) for ref, doc, path in self.admins)
        rules: list[Rule] = []
        names: dict[str, Source | None] = {}
        for raw, doc, path in self.raw_rules:
            rule = self.guarded(doc, path, RuleParser(self, raw, doc, path, groups).parse)
            if rule is None:
                continue
            if rule.name in names:
                self.err(doc, (*path, 'name'), f'rule `{rule.name}` is already defined at {names[rule.name]}')
            names[rule.name] = rule.source
            rules.append(rule)
        return Policy(groups, admins, dict(self.resources), tuple(rules), version, files, teams=dict(self.teams))

    def expand_groups(self) -> dict[str, frozenset[str]]:
        expanded: dict[str, frozenset[str]] = {}

        def expand(name: str, trail: tuple[str, ...]) -> frozenset[str]:
            if name in expanded:
                return expanded[name]
            members, doc, path = self.group_defs[name]
            if len(trail) >= MAX_GROUP_DEPTH:
                self.err(doc, path, f'groups nest deeper than {MAX_GROUP_DEPTH} levels: {" -> ".join(trail[:3])} -> …')
                expanded[name] = frozenset()
                return expanded[name]
            parts: list[frozenset[str]] = []
            for i, ref in enumerate(members):
                target = ref[len('group:') :] if ref.startswith('group:') else ref
                if target in self.group_defs and (ref.startswith('group:') or '@' not in ref):
                    if target in trail or target == name:
                        cycle = ' -> '.join((*trail, name, target))
                        self.err(doc, (*path, i), f'groups form a cycle: {cycle}', value=True)
                        continue
                    parts.append(expand(target, (*trail, name)))
                else:
                    parts.append(self.check_ref(ref, doc, (*path, i), {}))
            expanded[name] = _union(parts)
            return expanded[name]

        for name in self.group_defs:
            expand(name, ())
        return expanded

    def check_ref(
        self, ref: str, doc: MarkedDocument, path: tuple[Any, ...], groups: Mapping[str, frozenset[str]]
    ) -> frozenset[str]:
        """Validate one person/group reference; return the identifiers it stands for."""
        if not isinstance(ref, str) or not ref.strip():
            self.err(doc, path, f'{ref!r} is not an email, Slack user ID, group:NAME or pipeline:NAME', value=True)
            return frozenset()
        if ref.startswith('group:') or ref in self.group_defs:
            name = ref.removeprefix('group:')
            if name not in self.group_defs:
                self.err(doc, path, f'unknown group `{name}` (defined groups: {listed(self.group_defs) or "none"})',
                         value=True)  # fmt: skip
                return frozenset()
            return groups.get(name, frozenset())
        if ref.startswith('pipeline:'):
            if not NAME.match(ref[len('pipeline:') :]):
                self.err(doc, path, f'`{ref}` is not a valid pipeline name', value=True)
            return frozenset({ref})
        if '@' in ref:
            return frozenset({ref.lower()})
        if SLACK_ID.match(ref):
            return frozenset({ref})
        self.err(doc, path, f'unknown group `{ref}` (a member is an email, a Slack user ID like U024BE7LH, '
                            f'group:NAME or pipeline:NAME)', value=True)  # fmt: skip
        return frozenset()


def _union(parts: Iterable[frozenset[str]]) -> frozenset[str]:
    """Everyone in ``parts``, each distinct set added once: a group is one set, however often it is named.

    A group of 20,000 named 20,000 times (in ``admins``, in another group) would otherwise be 400 million
    insertions, seconds of the loader's time at every reload.
    """
    distinct = {id(part): part for part in parts}
    return frozenset().union(*distinct.values())


def _mapping(builder: Builder, doc: MarkedDocument, path: tuple[Any, ...]) -> dict[Any, Any]:
    value = doc.data.get(path[0]) if isinstance(doc.data, dict) else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        builder.err(doc, path, f'`{path[0]}` must be a mapping', value=True)
        return {}
    return value
