"""What every part of the load benchmark uses: its scale, the way a part gives up (:class:`Skip`), figures
(percentiles, milliseconds) and readings of the machine and its processes from ``/proc``."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SIGNING_SECRET = 'bench-signing-secret'
WEBHOOK_SECRET = 'bench-webhook-secret'
ALEX, SAM = 'U0ALEX', 'U0SAM'


@dataclass(frozen=True)
class Scale:
    users: int
    rounds: int
    clicks: int
    grants: int
    idle_grants: int
    calibration: int
    calls_requests: int
    budget: float  # seconds for the whole run; parts that would not fit are skipped


FULL = Scale(users=50, rounds=5, clicks=50, grants=1000, idle_grants=20, calibration=40, calls_requests=2, budget=450)
QUICK = Scale(users=10, rounds=2, clicks=10, grants=100, idle_grants=6, calibration=20, calls_requests=1, budget=300)


class Skip(Exception):
    """A part that cannot be measured; its rows show ``n/a (message)``."""


# -- small helpers ----------------------------------------------------------------------------------------


def pct(values: Iterable[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        raise Skip('no samples')
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def ms(seconds: float) -> str:
    return f'{seconds * 1000:,.0f} ms' if abs(seconds) >= 0.01 else f'{seconds * 1000:.1f} ms'


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds a process has used so far (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def with_children(pids: list[int]) -> list[int]:
    """``pids`` and every process they started (a worker's revoke and notify processes), from /proc."""
    parent: dict[int, int] = {}
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(')', 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, todo = set(pids), list(pids)
    while todo:
        pid = todo.pop()
        for child, ppid in parent.items():
            if ppid == pid and child not in found:
                found.add(child)
                todo.append(child)
    return sorted(found)


def wait_for(check: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll ``check`` until truthy; return its last value (falsy when the time ran out)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def machine() -> dict[str, str]:
    model = 'unknown'
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                model = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    return {'cpu': model, 'cores': str(os.cpu_count()), 'python': platform.python_version()}


def loadavg() -> str:
    try:
        return ' '.join(Path('/proc/loadavg').read_text().split()[:3])
    except OSError:
        return '?'
