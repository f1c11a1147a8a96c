"""The sandbox's data directory is the user's alone: directories 0700, files 0600, whatever the umask says.

Part of `bot/sandbox/`. The embedded Redis's append-only file holds every request (reasons, emails, the audit
trail) and the logs say as much, so nothing `jit sandbox` keeps there may be readable by other local users.
`make_private` creates the directory and its `logs/` and `redis/` as 0700 and tightens what an older run left
there with looser modes; the children run with `PRIVATE_UMASK`, so what Redis and jit write later is private
too. Only what the sandbox itself puts in the directory is touched: a `--data-dir` that holds other files keeps
theirs as they are, but the directory itself becomes 0700.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from bot.sandbox.history import HISTORY_FILE

__all__ = ['PRIVATE_UMASK', 'make_private', 'open_private_log']

#: The umask of every child the sandbox starts: no group or other bits on anything they create.
PRIVATE_UMASK = 0o077
#: The directories the sandbox keeps under the data directory, tightened with all they hold.
_DIRS = ('logs', 'redis')
#: The files the sandbox keeps at the top of the data directory (the Redis socket, the page's history).
_FILES = ('redis.sock', HISTORY_FILE, HISTORY_FILE + '.partial', HISTORY_FILE + '.unreadable')


def make_private(root: Path) -> None:
    """Create `root`, `root/logs` and `root/redis` private, and take group and other bits off what is there."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tighten(root)
    for name in _DIRS:
        folder = root / name
        folder.mkdir(mode=0o700, exist_ok=True)
        for where, dirs, files in os.walk(folder):
            for entry in (where, *(os.path.join(where, d) for d in dirs), *(os.path.join(where, f) for f in files)):
                _tighten(Path(entry))
    for name in _FILES:
        _tighten(root / name)


def open_private_log(path: Path) -> int:
    """Open `path` for appending, created 0600 when new; return the descriptor (the caller closes it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, stat.S_IMODE(os.fstat(fd).st_mode) & ~PRIVATE_UMASK)
    return fd


def _tighten(path: Path) -> None:
    """Take the group and other bits off one file or directory; a symlink or a missing path is left alone."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode) or not stat.S_IMODE(mode) & PRIVATE_UMASK:
        return
    path.chmod(stat.S_IMODE(mode) & ~PRIVATE_UMASK)
