"""Which Redis database a suite uses, so that suites (and pytest-xdist workers) never share one.

Suites whose tests run one at a time keep a fixed database (``tests/audit`` 8 and 9, ``tests/stateful`` 10…).
The end-to-end and chaos suites are split across xdist workers by file, so each worker gets a database of
its own for them: ``gw0`` the first of the tuple, ``gw1`` the second, and so on. A variable set in the
environment wins (one database, for a run without xdist).
"""

from __future__ import annotations

import os

#: Redis databases for the e2e and chaos suites, one per xdist worker (pyproject's ``-n`` is at most 3).
E2E_DBS = (13, 15, 4)
CHAOS_DBS = (11, 3, 2)


def per_worker(variable: str, dbs: tuple[int, ...]) -> str:
    """The Redis URL for this worker: ``$variable`` when set, else its database among ``dbs``."""
    if os.environ.get(variable):
        return os.environ[variable]
    worker = os.environ.get('PYTEST_XDIST_WORKER', 'gw0')
    index = int(worker.removeprefix('gw') or 0)
    if index >= len(dbs):
        raise RuntimeError(f'more pytest-xdist workers than Redis databases kept for them ({dbs}); use -n {len(dbs)}')
    return f'redis://127.0.0.1:6379/{dbs[index]}'
