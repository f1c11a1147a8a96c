"""How the suite is spread over pytest-xdist workers (``-n 3 --dist loadfile`` in pyproject).

Nothing here is needed for correctness: every test process has a Redis server of its own
(``tests/support/redis_server.py``), and the tests that start servers take free ports and temporary
directories. ``--dist loadfile`` keeps a file's tests on one worker only so that module-scoped fixtures
(a moto server, a PostgreSQL cluster, an sshd) start once. Run ``python -m pytest -n0`` for one process.
"""

from __future__ import annotations

from typing import Any

#: The files that take a minute or more, longest first. They are handed out first, so that the run does not end
#: with two workers idle while a third goes through one of them (the order within each file is kept). xdist would
#: otherwise hand out the files with the most tests first, which put these one-test files last
#: (``--no-loadscope-reorder`` in pyproject keeps this order).
SLOW_FIRST = (
    'tests/chaos/test_redis_outages.py',
    'tests/e2e/test_many_replicas.py',
    'tests/chaos/test_sentinel_failover.py',
    'tests/fuzz/test_edge_fuzz.py',
    'tests/e2e/test_providers_e2e.py',
    'tests/chaos/test_worker_stops.py',
    'tests/chaos/test_worker_processes.py',
    'tests/e2e/test_lifecycle.py',
    'tests/fuzz/test_socket_fuzz.py',
    'tests/browser/test_sandbox_browser.py',
    'tests/test_wheel_sandbox.py',
)


def pytest_collection_modifyitems(items: list[Any]) -> None:
    rank = {path: i for i, path in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split('::')[0], len(SLOW_FIRST)))
