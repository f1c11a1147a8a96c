"""How the suite is spread over pytest-xdist workers (``-n 3 --dist loadfile`` in pyproject).

Nothing here is needed for correctness: every test process has a Redis server of its own
(``tests/support/redis_server.py``), and the tests that start servers take free ports and temporary
directories. ``--dist loadfile`` keeps a file's tests on one worker only so that module-scoped fixtures
(a moto server, a PostgreSQL cluster, an sshd) start once. Run ``python -m pytest -n0`` for one process.
"""
