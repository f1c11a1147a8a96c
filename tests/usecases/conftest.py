"""Use-case tests: each runs on the store in memory (milliseconds, no Redis) and on the Redis store.

The two stores are held to one contract in ``tests/contract/``; running the use cases on both as well shows
that nothing a use case relies on was left out of it.
"""

from __future__ import annotations

import pytest


@pytest.fixture(name='store_kind', params=['memory', 'redis'])
def _store_kind(request: pytest.FixtureRequest) -> str:
    if request.param == 'redis':
        request.applymarker(pytest.mark.redis)
    return str(request.param)
