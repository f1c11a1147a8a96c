"""How the suite is spread over pytest-xdist workers (``-n 3 --dist loadgroup`` in pyproject).

Tests that share a Redis database, a server or a directory stay on one worker, in file order: each
suite directory is one group, except the end-to-end and chaos suites, whose files get a Redis database per
worker (``tests/support/redis_dbs.py``), and the pure ones (core, sandbox, providers), which share
nothing; those are grouped by file. Run ``python -m pytest -n0`` (or ``-p no:xdist``) for one process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).parent
#: Suite directories whose files may run on different workers at once.
BY_FILE = {'e2e', 'chaos', 'core', 'sandbox', 'providers'}
#: Files of BY_FILE directories that still keep a fixed database of their own (see their REDIS_URL).
FIXED = {'e2e/test_sandbox.py', 'e2e/test_providers_e2e.py'}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups into the node IDs
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(item.path).relative_to(TESTS).parts
        group = parts[0] if len(parts) > 1 else 'top'
        if group in BY_FILE or '/'.join(parts) in FIXED:
            group = '/'.join(parts)
        item.add_marker(pytest.mark.xdist_group(group))
