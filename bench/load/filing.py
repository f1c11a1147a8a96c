"""Filing grants through the pipeline API for the revoke rows: one at a time, or paced from a few threads
behind the worker (so that each grant starts about when it is filed); and reading each request's
``expires_at`` as jit stored it, the time a revoke's lateness is measured from."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable

from bench.load.clients import Api
from bench.load.common import Skip
from bench.load.harness import Bench


def file(api: Api, duration: int, why: str) -> str:
    """One request under the ``auto_approve`` rule; its ID."""
    status, body = api.call('POST', '/api/v1/requests', {'resource': 'demo-app', 'role': 'deploy',
                                                          'duration': duration, 'reason': why})  # fmt: skip
    if status != 201:
        raise Skip(f'filing answered {status}: {str(body)[:120]}')
    return str(body['id'])


def file_paced(bench: Bench, api: Api, count: int, duration_for: Callable[[float], int], backlog: int,
               why: str, lag: list[float] | None = None) -> dict[str, float]:  # fmt: skip
    """File ``count`` requests from a few threads, never more than ``backlog`` filed and not yet granted (so
    that each grant starts about when it is filed); ``{request id: time it was filed}``."""
    watch = bench.watch
    filed: dict[str, float] = {}
    errors: list[str] = []
    lock = threading.Lock()
    state = {'issued': 0}
    granted_before = len(watch.grants)

    def ours_granted() -> int:
        return len(watch.grants) - granted_before

    def run() -> None:
        while len(errors) < 10:
            with lock:
                if state['issued'] >= count:
                    return
                state['issued'] += 1
            give_up = time.monotonic() + 30
            while state['issued'] - ours_granted() > backlog and time.monotonic() < give_up:
                time.sleep(0.002)
            at = time.time()
            status, body = api.call('POST', '/api/v1/requests', {
                'resource': 'demo-app', 'role': 'deploy', 'duration': duration_for(at), 'reason': why})  # fmt: skip
            with lock:
                if status == 201:
                    filed[str(body['id'])] = at
                else:
                    errors.append(f'{status} {str(body)[:120]}')
                    state['issued'] -= 1

    threads = [threading.Thread(target=run, daemon=True) for _ in range(6)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        time.sleep(0.2)
        if lag is not None:
            with lock:
                recent = [watch.grants[i] - t for i, t in list(filed.items())[-40:] if i in watch.grants]
            if len(recent) >= 5:
                lag[0] = statistics.median(recent)
    if errors:
        raise Skip(f'{len(errors)} filings failed, e.g. {errors[0]}')
    return filed


def expiries(bench: Bench, ids: list[str]) -> dict[str, float]:
    """Each request's ``expires_at`` as jit stored it."""
    import redis

    from bot.adapters.redis_store import RedisStore
    from bot.deps import SystemClock

    store = RedisStore(redis.Redis.from_url(bench.redis.url_for(2), decode_responses=True), clock=SystemClock())
    found: dict[str, float] = {}
    for start in range(0, len(ids), 200):
        for record in store.get_many(ids[start : start + 200]):
            if record is not None and record.expires_at:
                found[record.id] = float(record.expires_at)
    return found
