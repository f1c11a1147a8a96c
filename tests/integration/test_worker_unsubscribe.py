"""RQ's teardown on redis-py 8: the worker's pubsub thread must not hold a stopping worker for a minute.

The thread loops on ``get_message(timeout=60)``; once it has read the unsubscribe reply, the next call waits for a
subscription that never comes. RQ's own ``unsubscribe`` then joins it with no timeout. The state is set up here
on purpose (the reply read first), so the check does not depend on a race.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis
from rq import SimpleWorker

from tests.support.redis_server import own_redis_url
from workers.supervise import _Worker

pytestmark = pytest.mark.redis


def _stop_time(worker_class: type[SimpleWorker]) -> float | None:
    """Seconds ``unsubscribe`` took once the thread read the reply first, None if it was still blocked at 5 s."""
    worker = worker_class(['q'], connection=redis.Redis.from_url(own_redis_url(20)))
    worker.subscribe()
    time.sleep(0.3)
    worker.pubsub.unsubscribe()  # the reply is read by the thread, which then waits for a subscription
    time.sleep(0.5)
    started = time.monotonic()
    done = threading.Thread(target=worker.unsubscribe, daemon=True)
    done.start()
    done.join(5)
    return None if done.is_alive() else time.monotonic() - started


def test_the_worker_stops_at_once_even_when_the_pubsub_thread_read_its_reply_first():
    took = _stop_time(_Worker)
    assert took is not None and took < 3, took
