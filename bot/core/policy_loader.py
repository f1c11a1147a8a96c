"""Policy files to a :class:`~bot.core.policy.Policy`, or every problem as ``file:line:column: what``.

All ``*.yaml`` / ``*.yml`` files of the policy directory (not ``tests/``) are read in name order
and merged: ``groups`` and ``resources`` are unions (a name defined twice is an error naming both
places), ``admins`` and ``requests`` are concatenated in file order. Reading the files is the
caller's job (:func:`read_policy_dir`); :func:`build_policy` is pure.

Loading is bounded in time and memory whatever the files hold: their number and sizes are checked
before they are read (:data:`MAX_FILES`, :data:`MAX_FILE_BYTES`, :data:`MAX_TOTAL_BYTES`), and the
YAML reader refuses anchors, aliases, deep nesting and more than :data:`~bot.core._yaml_marks.MAX_NODES`
values (:mod:`bot.core._yaml_marks`). Any failure, for any input, is a ``PolicyConfigError`` whose
problems name a file, line and column: never another exception.

``env:NAME`` (read from the worker's environment when the setting is used) is allowed only in the
settings a provider declares secret (:data:`BUILTIN_SECRET_SETTINGS`; a provider from the
``jit.providers`` entry point declares its own, passed in as ``providers``). Any other setting may be
shown to the requester (a host, a database, a user name), so it cannot name a variable of the worker.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from bot.core._rule_parser import RuleParser, listed
from bot.core._yaml_marks import MAX_NODES, MarkedDocument, load_marked
from bot.core.errors import PolicyConfigError
from bot.core.policy import Policy, Resource, Role, Rule, Source

#: Providers jit ships; others come from the ``jit.providers`` entry point and are passed in.
BUILTIN_PROVIDERS = frozenset({'webhook', 'postgres', 'aws_iam', 'aws_sso', 'ssh'})
#: The settings of each built-in provider that hold a secret: only these may be written ``env:NAME``, and
#: none of them ever reaches a message. Each provider class states the same as ``secret_settings`` (a test
#: checks they agree); the core keeps this copy because it must not import the workers. The webhook ``url``
#: is secret because a URL often carries a credential (a token in the path or query, a password before @).
#: The AWS providers take their credentials from the worker's own chain, never from settings.
BUILTIN_SECRET_SETTINGS: Mapping[str, frozenset[str]] = {
    'webhook': frozenset({'url', 'secret'}),
    'postgres': frozenset({'dsn'}),
    'ssh': frozenset({'ca_key'}),
    'aws_iam': frozenset(),
    'aws_sso': frozenset(),
}
#: A policy file larger than this is refused before it is read (a policy of 1,000 rules has about 200 KiB).
MAX_FILE_BYTES = 256 * 1024
#: All the files together.
MAX_TOTAL_BYTES = 1024 * 1024
#: Policy files in the directory (``tests/`` not counted).
MAX_FILES = 500
#: Groups may name groups, which may name groups: at most this many levels.
MAX_GROUP_DEPTH = 32
#: The longest problem, in characters. A problem quotes what it is about (a rule's name, a key): one name
#: of 100,000 characters quoted by 5,000 problems would otherwise be gigabytes, logged and posted.
MAX_PROBLEM_CHARS = 1000

_T = TypeVar('_T')

TOP_KEYS = ('groups', 'admins', 'resources', 'requests')
RESOURCE_KEYS = ('description', 'provider', 'settings', 'roles')
SLACK_ID = re.compile(r'^[UW][A-Z0-9]{2,}$')
NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')


def read_policy_dir(directory: str | Path, *, display_root: str | Path | None = None) -> dict[str, str]:
    """Read every policy file under ``directory`` (not ``tests/``), keyed by the name errors should show.

    Every file is checked before a byte of it is read: a regular file (a FIFO would block the reader
    forever, a device never end), at most :data:`MAX_FILE_BYTES` (no more than that is ever read, even if
    the file grows meanwhile), at most :data:`MAX_FILES` files and :data:`MAX_TOTAL_BYTES` together, and
    UTF-8 text. Directories named ``*.yaml`` are walked, not read.

    Raises:
        PolicyConfigError: every file that cannot be read, each as ``file:line:column: why``.
    """
    root = Path(directory)
    if not root.is_dir():
        raise PolicyConfigError([f'{root}: policy directory not found'])
    shown = Path(display_root) if display_root is not None else root
    try:
        files = sorted(p for p in root.rglob('*')
                       if p.suffix in ('.yaml', '.yml') and 'tests' not in p.relative_to(root).parts[:-1])  # fmt: skip
    except OSError as exc:
        raise PolicyConfigError([f'{root}: cannot list the policy directory: {exc.strerror or exc}']) from None
    texts: dict[str, str] = {}
    problems: list[str] = []
    total = count = 0
    for path in files:
        name = str(shown / path.relative_to(root))
        try:
            data = _read_bounded(path)
        except _Unreadable as exc:
            problems.append(f'{name}:1:1: {exc}')
            continue
        if data is None:
            continue
        count, total = count + 1, total + len(data)
        if count > MAX_FILES:
            problems.append(f'{name}:1:1: more than {MAX_FILES} policy files (*.yaml, *.yml) in {shown}')
            break
        if total > MAX_TOTAL_BYTES:
            problems.append(f'{name}:1:1: with this file the policy files have more than {MAX_TOTAL_BYTES} bytes '
                            'together')  # fmt: skip
            break
        try:
            texts[name] = data.decode('utf-8')
        except UnicodeDecodeError as exc:
            before = data[: exc.start].decode('utf-8', 'replace')
            line, column = before.count('\n') + 1, len(before) - before.rfind('\n')
            problems.append(f'{name}:{line}:{column}: not UTF-8 text (byte 0x{data[exc.start]:02x})')
    if problems:
        raise PolicyConfigError(problems)
    return texts


class _Unreadable(Exception):
    """A policy file that is not read: why, as a problem says it."""


def _read_bounded(path: Path) -> bytes | None:
    """The bytes of ``path``, or None for a directory; never more than :data:`MAX_FILE_BYTES` + 1 read."""
    try:
        # Non-blocking: opening a FIFO waits for a writer otherwise. Checked on the descriptor, not the name.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0))
    except FileNotFoundError:
        raise _Unreadable('cannot read the file: it does not exist (a dangling link?)') from None
    except IsADirectoryError:
        return None
    except OSError as exc:
        raise _Unreadable(f'cannot read the file: {exc.strerror or exc}') from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            return None
        if not stat.S_ISREG(info.st_mode):
            raise _Unreadable('not a regular file')
        if info.st_size > MAX_FILE_BYTES:
            raise _Unreadable(f'the file has {info.st_size} bytes; a policy file may have at most {MAX_FILE_BYTES}')
        chunks, size = [], 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_FILE_BYTES:  # it grew after the check
            raise _Unreadable(f'the file has more than {MAX_FILE_BYTES} bytes; a policy file may have at most that')
        return b''.join(chunks)
    except OSError as exc:
        raise _Unreadable(f'cannot read the file: {exc.strerror or exc}') from None
    finally:
        os.close(fd)


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
    """Build a policy from ``{file name: YAML text}``; raises PolicyConfigError with every problem.

    Args:
        texts: the files, as :func:`read_policy_dir` returns them.
        providers: the provider names a resource may use. A mapping also says, for each, which settings
            it declares secret (the only ones that may be ``env:NAME``); given only names, the built-in
            providers declare :data:`BUILTIN_SECRET_SETTINGS` and any other provider none.
    """
    builder = _Builder(providers)
    docs: list[MarkedDocument] = []
    used = 0
    for name, text in sorted(texts.items()):
        docs.append(load_marked(name, text, max_nodes=MAX_NODES, used=used))
        used += docs[-1].nodes
    if not docs:
        raise PolicyConfigError(['no policy files (*.yaml) found'])
    for doc in docs:
        builder.problems.extend(doc.problems)
        if not doc.problems:
            builder.guarded(doc, (), builder.collect, doc)
    if builder.problems:
        raise PolicyConfigError(builder.problems)
    policy = builder.guarded(docs[0], (), builder.finish, policy_version(texts), tuple(sorted(texts)))
    if builder.problems or policy is None:
        raise PolicyConfigError(builder.problems)
    return policy


class _Builder:
    """Collects definitions from every file, then checks references across them."""

    def __init__(self, providers: Collection[str]) -> None:
        self.providers = providers
        self.secret_settings: Mapping[str, Collection[str]] = (
            providers if isinstance(providers, Mapping) else BUILTIN_SECRET_SETTINGS
        )
        self.problems: list[str] = []
        self.group_defs: dict[str, tuple[list[Any], MarkedDocument, tuple[Any, ...]]] = {}
        self.resources: dict[str, Resource] = {}
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
            self.admins.extend((a, doc, ('admins', i)) for i, a in enumerate(admins))
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
        if isinstance(provider, str) and provider in self.providers:
            self.check_env(doc, path, provider, settings)
        description = spec.get('description')
        if description is not None and not isinstance(description, str):
            self.err(doc, (*path, 'description'), f'`description` of resource `{name}` must be text')
        roles = self.parse_roles(doc, path, spec.get('roles'))
        self.resources[name] = Resource(name, str(provider), roles, settings, str(description or ''),
                                        Source(doc.file, *doc.pos(path)))  # fmt: skip

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
        return Policy(groups, admins, dict(self.resources), tuple(rules), version, files)

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


def _mapping(builder: _Builder, doc: MarkedDocument, path: tuple[Any, ...]) -> dict[Any, Any]:
    value = doc.data.get(path[0]) if isinstance(doc.data, dict) else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        builder.err(doc, path, f'`{path[0]}` must be a mapping', value=True)
        return {}
    return value
