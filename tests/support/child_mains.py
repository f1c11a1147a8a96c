"""Entry points for the child processes of tests/test_child_process.py (spawned: they must be importable)."""

from __future__ import annotations

import time


def crashes(environ: dict[str, str], policy: dict[str, str]) -> None:
    time.sleep(0.2)
    raise SystemExit(3)


def stops_as_asked(environ: dict[str, str], policy: dict[str, str]) -> None:
    raise SystemExit(0)
