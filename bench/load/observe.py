"""What jit did, seen from outside: the webhook target's calls (the first grant and revoke of each request, and
from every call, revokes lost and grants made twice) and how far the Slack notifications lag in Redis."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any


class Watcher:
    """Follows the webhook target's calls in a thread: the first successful grant and revoke of each request."""

    def __init__(self, webhook: Any) -> None:
        self.webhook = webhook
        self.grants: dict[str, float] = {}
        self.revokes: dict[str, float] = {}
        self._seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='bench-watcher', daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.poll()

    def poll(self) -> None:
        calls = self.webhook.calls
        for call in calls[self._seen :]:
            if call.ok and call.request_id:
                if call.action == 'grant':
                    self.grants.setdefault(call.request_id, call.time)
                elif call.action == 'revoke':
                    self.revokes.setdefault(call.request_id, call.time)
        self._seen = len(calls)


def verdicts(calls: list[Any], ids: Iterable[str]) -> tuple[list[str], list[str], list[str]]:
    """(revokes lost, granted again after a revoke, grant calls repeated before the revoke) for ``ids``."""
    by_id: dict[str, list[Any]] = {}
    for call in calls:
        if call.ok and call.request_id:
            by_id.setdefault(call.request_id, []).append(call)
    lost, twice, repeated = [], [], []
    for request_id in ids:
        mine = by_id.get(request_id, [])
        grants = [c for c in mine if c.action == 'grant']
        revokes = [c for c in mine if c.action == 'revoke']
        if not revokes or (grants and grants[-1].time > revokes[-1].time):
            lost.append(request_id)
        if revokes and any(g.time > revokes[0].time for g in grants):
            twice.append(request_id)
        elif len(grants) > 1:
            repeated.append(request_id)
    return lost, twice, repeated


def notify_backlog(client: Any) -> int:
    """Audit events the notify follower has not shown in Slack yet (its cursor behind the stream's head)."""
    head = int(client.hget('jit:audit:head', 'seq') or 0)
    return max(0, head - int(client.get('jit:notify:cursor') or 0))
