"""Policy files to a :class:`~bot.core.policy.Policy`, or every problem as ``file:line:column: what``.

All ``*.yaml`` / ``*.yml`` files of the policy directory (not ``tests/``) are read in name order
and merged: ``groups``, ``resources`` and ``teams`` are unions (a name defined twice is an error naming
both places), ``admins`` and ``requests`` are concatenated in file order. Reading the files is the
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
A Teams channel's ``webhook`` is the other way round: always ``env:NAME``, never written inline (whoever has
the URL can post in the channel).

The files are read in :mod:`bot.core._policy_files` and the policy is built in :mod:`bot.core._policy_builder`
(each rule in :mod:`bot.core._rule_parser`); this module is what callers import.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from pathlib import Path

from bot.core._policy_builder import Builder
from bot.core._policy_files import MAX_FILE_BYTES, MAX_FILES, MAX_TOTAL_BYTES, read_policy_dir
from bot.core._yaml_marks import MAX_NODES, MarkedDocument, load_marked
from bot.core.errors import PolicyConfigError
from bot.core.policy import Policy

__all__ = [
    'BUILTIN_PROVIDERS',
    'BUILTIN_SECRET_SETTINGS',
    'MAX_FILES',
    'MAX_FILE_BYTES',
    'MAX_TOTAL_BYTES',
    'build_policy',
    'load_policy',
    'policy_version',
    'read_policy_dir',
]

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
    builder = Builder(providers, providers if isinstance(providers, Mapping) else BUILTIN_SECRET_SETTINGS)
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
