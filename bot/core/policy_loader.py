"""Policy files to a :class:`~bot.core.policy.Policy`, or every problem as ``file:line: what``.

All ``*.yaml`` / ``*.yml`` files of the policy directory (not ``tests/``) are read in name order
and merged: ``groups`` and ``resources`` are unions (a name defined twice is an error naming both
places), ``admins`` and ``requests`` are concatenated in file order. Reading the files is the
caller's job (:func:`read_policy_dir`); :func:`build_policy` is pure.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from bot.core._rule_parser import RuleParser
from bot.core._yaml_marks import MarkedDocument, load_marked
from bot.core.errors import PolicyConfigError
from bot.core.policy import Policy, Resource, Role, Rule, Source

#: Providers jit ships; others come from the ``jit.providers`` entry point and are passed in.
BUILTIN_PROVIDERS = frozenset({'webhook', 'postgres', 'aws_iam', 'aws_sso', 'ssh'})

TOP_KEYS = ('groups', 'admins', 'resources', 'requests')
RESOURCE_KEYS = ('description', 'provider', 'settings', 'roles')
SLACK_ID = re.compile(r'^[UW][A-Z0-9]{2,}$')
NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')


def read_policy_dir(directory: str | Path, *, display_root: str | Path | None = None) -> dict[str, str]:
    """Read every policy file under ``directory`` (not ``tests/``), keyed by the name errors should show."""
    root = Path(directory)
    if not root.is_dir():
        raise PolicyConfigError([f'{root}: policy directory not found'])
    shown = Path(display_root) if display_root is not None else root
    files = sorted(
        p for p in root.rglob('*') if p.suffix in ('.yaml', '.yml') and 'tests' not in p.relative_to(root).parts[:-1]
    )
    return {str(shown / p.relative_to(root)): p.read_text(encoding='utf-8') for p in files}


def policy_version(texts: Mapping[str, str]) -> str:
    """A short hash of the files' names and contents: recorded with every audit event."""
    digest = hashlib.sha256()
    for name in sorted(texts):
        digest.update(Path(name).name.encode() + b'\0' + texts[name].encode() + b'\0')
    return digest.hexdigest()[:12]


def load_policy(directory: str | Path, *, providers: Collection[str] = BUILTIN_PROVIDERS) -> Policy:
    """Read and build the policy in ``directory``; raises PolicyConfigError with every problem."""
    return build_policy(read_policy_dir(directory), providers=providers)


def build_policy(texts: Mapping[str, str], *, providers: Collection[str] = BUILTIN_PROVIDERS) -> Policy:
    """Build a policy from ``{file name: YAML text}``; raises PolicyConfigError with every problem."""
    builder = _Builder(providers)
    docs = [load_marked(name, text) for name, text in sorted(texts.items())]
    if not docs:
        raise PolicyConfigError(['no policy files (*.yaml) found'])
    for doc in docs:
        builder.problems.extend(doc.problems)
        if not doc.problems:
            builder.collect(doc)
    if builder.problems:
        raise PolicyConfigError(builder.problems)
    policy = builder.finish(policy_version(texts), tuple(sorted(texts)))
    if builder.problems:
        raise PolicyConfigError(builder.problems)
    return policy


class _Builder:
    """Collects definitions from every file, then checks references across them."""

    def __init__(self, providers: Collection[str]) -> None:
        self.providers = providers
        self.problems: list[str] = []
        self.group_defs: dict[str, tuple[list[Any], MarkedDocument, tuple[Any, ...]]] = {}
        self.resources: dict[str, Resource] = {}
        self.admins: list[tuple[str, MarkedDocument, tuple[Any, ...]]] = []
        self.raw_rules: list[tuple[dict[str, Any], MarkedDocument, tuple[Any, ...]]] = []

    def err(self, doc: MarkedDocument, path: tuple[Any, ...], message: str, *, value: bool = False) -> None:
        self.problems.append(f'{doc.where(path, value=value)}: {message}')

    def collect(self, doc: MarkedDocument) -> None:
        if doc.data is None:
            return
        if not isinstance(doc.data, dict):
            self.err(doc, (), 'a policy file must be a mapping with groups, admins, resources, requests')
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
            self.admins.extend((str(a), doc, ('admins', i)) for i, a in enumerate(admins))
        for name, spec in _mapping(self, doc, ('resources',)).items():
            self.collect_resource(doc, str(name), spec)
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
        roles = self.parse_roles(doc, path, spec.get('roles'))
        self.resources[name] = Resource(name, str(provider), roles, settings, str(spec.get('description') or ''),
                                        Source(doc.file, *doc.pos(path)))  # fmt: skip

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
        admins: set[str] = set()
        for ref, doc, path in self.admins:
            admins |= self.check_ref(ref, doc, path, groups)
        rules: list[Rule] = []
        names: dict[str, Source | None] = {}
        for raw, doc, path in self.raw_rules:
            rule = RuleParser(self, raw, doc, path, groups).parse()
            if rule is None:
                continue
            if rule.name in names:
                self.err(doc, (*path, 'name'), f'rule `{rule.name}` is already defined at {names[rule.name]}')
            names[rule.name] = rule.source
            rules.append(rule)
        return Policy(groups, frozenset(admins), dict(self.resources), tuple(rules), version, files)

    def expand_groups(self) -> dict[str, frozenset[str]]:
        expanded: dict[str, frozenset[str]] = {}

        def expand(name: str, trail: tuple[str, ...]) -> frozenset[str]:
            if name in expanded:
                return expanded[name]
            members, doc, path = self.group_defs[name]
            out: set[str] = set()
            for i, ref in enumerate(members):
                target = ref[len('group:') :] if ref.startswith('group:') else ref
                if target in self.group_defs and (ref.startswith('group:') or '@' not in ref):
                    if target in trail or target == name:
                        cycle = ' -> '.join((*trail, name, target))
                        self.err(doc, (*path, i), f'groups form a cycle: {cycle}', value=True)
                        continue
                    out |= expand(target, (*trail, name))
                else:
                    out |= self.check_ref(ref, doc, (*path, i), {})
            expanded[name] = frozenset(out)
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
                self.err(doc, path, f'unknown group `{name}` (defined groups: {", ".join(self.group_defs) or "none"})',
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


def _mapping(builder: _Builder, doc: MarkedDocument, path: tuple[Any, ...]) -> dict[Any, Any]:
    value = doc.data.get(path[0]) if isinstance(doc.data, dict) else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        builder.err(doc, path, f'`{path[0]}` must be a mapping', value=True)
        return {}
    return value
