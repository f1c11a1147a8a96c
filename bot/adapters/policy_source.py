"""The policy currently in force, reloaded when the files change, the last good one kept.

Calling the source returns the current :class:`~bot.core.policy.Policy` at once: it never loads and
never waits for a load, because its callers are Slack acks on the event loop of ``jit serve`` and
grants and revokes in the worker's job loop. When ``check_every`` seconds have passed (or a reload
was asked for, SIGHUP), the call starts one background thread that compares the files' names, sizes,
modification times and inodes and, when they changed, loads them. Loading is bounded in time and
memory (:mod:`bot.core.policy_loader`); a bad new policy, or any failure at all, is logged with every
``file:line:column`` problem while the previous one stays in force. An observer hears of both, so the
change reaches the audit trail and the audit channel; the git commit of the directory, when it is
in git, is recorded beside the content hash.
"""

from __future__ import annotations

import dataclasses
import subprocess
import threading
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Protocol

import structlog

from bot.core.errors import PolicyConfigError
from bot.core.policy import Policy
from bot.core.policy_loader import build_policy, read_policy_dir

log = structlog.get_logger(__name__)

#: What the files looked like at the last check: (path, mtime in ns, size, inode) of each.
Fingerprint = tuple[tuple[str, int, int, int], ...]
#: How many of a rejected policy's problems its log line holds (with their count); ``jit policy validate`` lists all.
LOGGED_PROBLEMS = 100


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
    """Loads the policy directory once at start (failing loudly) and keeps it fresh after, off the callers' threads."""

    def __init__(
        self, directory: str | Path, *, providers: Collection[str], check_every: float = 2.0,
        observer: PolicyObserver | None = None, initial: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        """``providers``: the names a resource may use; a mapping also gives each one's secret settings.

        ``initial``: the files of a policy already in force in another process of this installation (the worker's
        notify process starts from its parent's), used instead of the directory at start: a bad file dropped in
        meanwhile must not keep a helper process from starting. Later changes are read from the directory.
        """
        self.directory = Path(directory)
        self.providers = providers
        self.check_every = check_every
        self.observer = observer
        self._lock = threading.Lock()  # one load at a time; only loaders ever wait for it
        self._state = threading.Lock()  # guards _loading; never held while loading
        self._loading = False
        self._reload_asked = False
        self._checked = time.monotonic()
        self._stamp = self._fingerprint()
        self._texts: dict[str, str] = {}
        self._policy = self._read(initial)

    @property
    def texts(self) -> dict[str, str]:
        """The files of the policy in force, as read (for :class:`PolicySource` ``initial`` elsewhere)."""
        return dict(self._texts)

    def _read(self, texts: Mapping[str, str] | None = None) -> Policy:
        files = dict(texts) if texts is not None else read_policy_dir(self.directory)
        policy = build_policy(files, providers=self.providers)
        self._texts = files
        return dataclasses.replace(policy, commit=git_commit(self.directory))

    def announce(self) -> None:
        """Tell the observer which policy is in force (at start)."""
        if self.observer:
            self.observer.loaded(self._policy)

    def __call__(self) -> Policy:
        """The policy in force, at once; starts a check in the background when one is due."""
        if self._reload_asked or time.monotonic() - self._checked >= self.check_every:
            self._in_background()
        return self._policy

    def request_reload(self) -> None:
        """Ask for a load whether or not the files look changed (SIGHUP).

        Safe in a signal handler: it only sets a flag (no lock, no thread), and the next call of the source
        starts the load; :meth:`watch` makes that call at least every second.
        """
        self._reload_asked = True

    def watch(self, every: float = 1.0) -> threading.Thread:
        """Call the source every ``every`` seconds from a daemon thread, so a change or SIGHUP is loaded even
        when nothing else asks for the policy (an idle worker)."""

        def run() -> None:
            while True:
                time.sleep(every)
                self()

        thread = threading.Thread(target=run, name='jit-policy-watch', daemon=True)
        thread.start()
        return thread

    def check(self) -> bool:
        """Load now if the files changed since the last check; True when a new policy is in force.

        This waits for the load: the background thread runs it, and tests do.
        """
        with self._lock:
            self._checked = time.monotonic()
            stamp = self._fingerprint()
            if stamp == self._stamp:
                return False
            self._stamp = stamp
            return self._load()

    def reload(self) -> bool:
        """Load now (waiting for it); True when the new policy is in force."""
        with self._lock:
            self._checked = time.monotonic()
            self._stamp = self._fingerprint()
            return self._load()

    def _in_background(self) -> None:
        with self._state:
            if self._loading:
                return
            self._loading = True
        self._checked = time.monotonic()
        try:
            threading.Thread(target=self._background, name='jit-policy-load', daemon=True).start()
        except RuntimeError:  # no thread to be had: try again at the next check
            with self._state:
                self._loading = False
            log.error('policy.check_not_started')

    def _background(self) -> None:
        try:
            while True:
                forced, self._reload_asked = self._reload_asked, False
                if forced:
                    self.reload()
                else:
                    self.check()
                if not self._reload_asked:  # a SIGHUP during the load: once more
                    break
        except Exception:  # _load reports every failure; this keeps the next check possible whatever happens
            log.exception('policy.check_failed')
        finally:
            with self._state:
                self._loading = False

    def _load(self) -> bool:
        try:
            policy = self._read()
        except PolicyConfigError as exc:
            problems = exc.problems
        except Exception as exc:  # the loader raises only PolicyConfigError; anything else is a problem all the same
            problems = [
                f'{self.directory}:1:1: the policy could not be loaded ({type(exc).__name__}: {str(exc)[:200]})'
            ]
        else:
            changed = policy.version != self._policy.version
            self._policy = policy
            if changed:
                log.info('policy.loaded', version=policy.version, rules=len(policy.rules))
                self._tell('loaded', policy)
            return True
        log.error('policy.rejected', problems=problems[:LOGGED_PROBLEMS], problem_count=len(problems),
                  kept_version=self._policy.version)  # fmt: skip
        self._tell('rejected', problems, self._policy)
        return False

    def _tell(self, what: str, *args: object) -> None:
        """The observer hears of it; its failure (Redis away) is logged, and the policy in force stays."""
        if self.observer is None:
            return
        try:
            getattr(self.observer, what)(*args)
        except Exception:  # the audit record is lost, the load is not
            log.exception('policy.observer_failed', what=what)

    def _fingerprint(self) -> Fingerprint:
        """What the policy files look like; a file that vanishes meanwhile (an editor's save) is one more change."""
        found = []
        try:
            if not self.directory.is_dir():
                return ()
            for path in self.directory.rglob('*'):
                if path.suffix not in ('.yaml', '.yml'):
                    continue
                try:
                    info = path.stat()
                except OSError:
                    found.append((str(path), -1, -1, -1))
                else:
                    found.append((str(path), info.st_mtime_ns, info.st_size, info.st_ino))
        except OSError:
            return (('<the policy directory cannot be listed>', 0, 0, 0),)
        return tuple(sorted(found))
