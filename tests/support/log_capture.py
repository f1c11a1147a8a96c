"""Log lines captured with the context structlog's contextvars hold, as jit's own processors merge it in.

structlog's ``capture_logs(processors=[merge_contextvars])`` does the same from structlog 25.5 on; jit supports
structlog 24 (``pyproject.toml``), so the tests that need the context use this instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import structlog
from structlog.contextvars import merge_contextvars
from structlog.testing import LogCapture

__all__ = ['capture_logs']


@contextlib.contextmanager
def capture_logs() -> Iterator[list[dict[str, Any]]]:
    """Each line logged in the block (a dict, ``log_level`` among its keys), its bound context merged in."""
    cap = LogCapture()
    before = structlog.get_config()
    structlog.configure(processors=[merge_contextvars, cap], cache_logger_on_first_use=False)
    try:
        yield cap.entries
    finally:
        structlog.configure(**before)
