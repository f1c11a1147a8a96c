"""SIGTERM stops ``jit worker`` promptly, every time.

RQ's teardown unsubscribes from its pubsub channel and joins the pubsub thread; with redis-py 8 that join has
no timeout, and when the thread read the unsubscribe reply first it waits up to a minute for a subscription
that never comes. A process manager would kill the worker first, in the middle of whatever it was doing.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def test_sigterm_stops_the_worker_within_seconds_every_time(start_jit, redis_url):
    """Twelve starts and stops of the worker: each stops within 5 s of SIGTERM."""
    jit = start_jit(redis_url)
    took = []
    for _ in range(12):
        worker = jit.worker
        asked = time.monotonic()
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(60)
        took.append(round(time.monotonic() - asked, 2))
        jit.start_worker()
    assert max(took) < 5, took
