"""jit: just-in-time access, asked for and approved in Slack."""

from __future__ import annotations

from importlib import metadata


def version() -> str:
    """The installed package's version (``pyproject.toml``), as ``jit --version``, ``/readyz`` and the start log
    line give it; ``0+unknown`` when jit runs from a tree that was never installed."""
    try:
        return metadata.version('jit-access')
    except metadata.PackageNotFoundError:
        return '0+unknown'
