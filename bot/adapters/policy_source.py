"""The policy currently in force, reloaded when the files change, the last good one kept.

Calling the source returns the current :class:`~bot.core.policy.Policy`. At most every
``check_every`` seconds it compares the files' modification times; when they changed it loads
again, and a bad new policy is logged (with every ``file:line`` problem) while the previous
one stays in force. ``reload()`` forces a load (SIGHUP). An observer hears of both, so the
change reaches the audit trail and the audit channel; the git commit of the directory, when it is
in git, is recorded beside the content hash.
"""

from __future__ import annotations

import dataclasses
import subprocess
import threading
import time
from collections.abc import Collection
from pathlib import Path
from typing import Protocol

import structlog

from bot.core.errors import PolicyConfigError
from bot.core.policy import Policy
from bot.core.policy_loader import build_policy, read_policy_dir

log = structlog.get_logger(__name__)


class PolicyObserver(Protocol):
    def loaded(self, policy: Policy) -> None: ...

    def rejected(self, problems: list[str], kept: Policy) -> None: ...


def git_commit(directory: Path) -> str | None:
    """The commit checked out in ``directory``'s repository, or None (not in git, or no git)."""
    try:
        out = subprocess.run(['git', '-C', str(directory), 'rev-parse', 'HEAD'], capture_output=True, text=True,
                             timeout=5, check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class PolicySource:
    """Loads the policy directory once at start (failing loudly) and keeps it fresh after."""

    def __init__(
        self, directory: str | Path, *, providers: Collection[str], check_every: float = 2.0,
        observer: PolicyObserver | None = None,
    ) -> None:  # fmt: skip
        self.directory = Path(directory)
        self.providers = providers
        self.check_every = check_every
        self.observer = observer
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._stamp = self._fingerprint()
        self._policy = self._read()

    def _read(self) -> Policy:
        policy = build_policy(read_policy_dir(self.directory), providers=self.providers)
        return dataclasses.replace(policy, commit=git_commit(self.directory))

    def announce(self) -> None:
        """Tell the observer which policy is in force (at start)."""
        if self.observer:
            self.observer.loaded(self._policy)

    def __call__(self) -> Policy:
        if time.monotonic() - self._checked >= self.check_every:
            with self._lock:
                self._checked = time.monotonic()
                stamp = self._fingerprint()
                if stamp != self._stamp:
                    self._stamp = stamp
                    self._load()
        return self._policy

    def reload(self) -> bool:
        """Load now; True when the new policy is in force."""
        with self._lock:
            self._stamp = self._fingerprint()
            return self._load()

    def _load(self) -> bool:
        try:
            policy = self._read()
        except PolicyConfigError as exc:
            log.error('policy.rejected', problems=exc.problems, kept_version=self._policy.version)
            if self.observer:
                self.observer.rejected(exc.problems, self._policy)
            return False
        changed = policy.version != self._policy.version
        self._policy = policy
        if changed:
            log.info('policy.loaded', version=policy.version, rules=len(policy.rules))
            if self.observer:
                self.observer.loaded(policy)
        return True

    def _fingerprint(self) -> tuple[tuple[str, float, int], ...]:
        if not self.directory.is_dir():
            return ()
        return tuple(sorted((str(p), p.stat().st_mtime, p.stat().st_size)
                            for p in self.directory.rglob('*') if p.suffix in ('.yaml', '.yml')))  # fmt: skip
