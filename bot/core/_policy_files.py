"""Reading the policy directory within bounds: which files, how large, how many, and UTF-8.

Part of the loader (:mod:`bot.core.policy_loader`, which exports these names): the only part of loading
that touches the file system, kept apart so that building a policy stays a pure function of the texts.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from bot.core.errors import PolicyConfigError

#: A policy file larger than this is refused before it is read (a policy of 1,000 rules has about 200 KiB).
MAX_FILE_BYTES = 256 * 1024
#: All the files together.
MAX_TOTAL_BYTES = 1024 * 1024
#: Policy files in the directory (``tests/`` not counted).
MAX_FILES = 500


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
