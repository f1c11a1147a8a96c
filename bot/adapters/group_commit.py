"""Group commit: the steps on the audit chain that threads of one process ask for at once, applied together.

Every audit event chains to the one before it (its hash covers the previous hash), so two steps that append to
the chain cannot be decided side by side. One at a time, each would wait for the round trips of all the steps
before it - a burst of revokes did, on one lock. Here the waiting steps are committed together in two round
trips: the chain's head and their requests are read at once, each step decides in turn what to write, and one
Lua step applies it all only if nothing it was decided on moved meanwhile (else everything is decided again).
The chain's SHA-256 is computed here, in Python, because Redis' Lua has none.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.core.model import GENESIS_HASH

# Steps on requests and the audit chain, applied only if the head's seq (KEYS[1], ARGV[1]) and every request they
# were decided on (ARGV[2]: [[key, value], ...], [key] for one that did not exist) are what they were then.
# ARGV[3]: the writes, the stream's XADDs first.
_APPLY = """
if (redis.call('HGET', KEYS[1], 'seq') or '0') ~= ARGV[1] then return 0 end
for _, expected in ipairs(cjson.decode(ARGV[2])) do
  local current = redis.call('GET', expected[1])
  if #expected == 1 then
    if current then return 0 end
  elseif current ~= expected[2] then
    return 0
  end
end
for _, command in ipairs(cjson.decode(ARGV[3])) do redis.call(unpack(command)) end
return 1
"""

#: Attempts at one commit while other processes keep moving the audit chain under it.
MAX_CONFLICTS = 100
#: Steps committed together at most (a burst of revokes, of Slack requests).
COMMIT_BATCH = 64


@dataclass(eq=False)
class _Step:
    """One thread's step on the audit chain, waiting to be committed (see ``RedisStore._apply``)."""

    key: str | None
    write: Callable[[Writes, str | None], Any]
    leads: bool = False  # this thread commits the next batch
    finished: bool = False
    value: Any = None
    error: BaseException | None = None
    wake: threading.Event = field(default_factory=threading.Event)


class Writes:
    """The writes of one atomic step, written down like a redis-py pipeline's and sent as one Lua step."""

    def __init__(self, *, seq: int, hash: str) -> None:
        self.seq, self.hash = seq, hash  # the chain's head: as read, then after each event written here
        self.events: list[list[str]] = []  # XADDs, sent first: a stream that refuses an ID stops everything
        self.commands: list[list[str]] = []
        self.values: dict[str, str] = {}  # what SET writes, for the next step on the same key

    def mark(self) -> tuple[int, int, int, str, dict[str, str]]:
        return len(self.events), len(self.commands), self.seq, self.hash, dict(self.values)

    def rollback(self, mark: tuple[int, int, int, str, dict[str, str]]) -> None:
        """Drop what a step that raised had written down."""
        events, commands, self.seq, self.hash, self.values = mark
        del self.events[events:], self.commands[commands:]

    def all(self) -> list[list[str]]:
        return self.events + self.commands

    def _add(self, *args: Any) -> None:
        self.commands.append([a if isinstance(a, str) else repr(a) if isinstance(a, float) else str(a) for a in args])

    def set(self, key: str, value: str) -> None:
        self._add('SET', key, value)
        self.values[key] = value

    def delete(self, *keys: str) -> None:
        self._add('DEL', *keys)

    def zadd(self, key: str, mapping: dict[str, float], *, nx: bool = False, xx: bool = False) -> None:
        flags = ['NX'] if nx else ['XX'] if xx else []
        self._add('ZADD', key, *flags, *[x for member, score in mapping.items() for x in (float(score), member)])

    def zrem(self, key: str, *members: str) -> None:
        self._add('ZREM', key, *members)

    def sadd(self, key: str, *members: str) -> None:
        self._add('SADD', key, *members)

    def srem(self, key: str, *members: str) -> None:
        self._add('SREM', key, *members)

    def hset(self, key: str, *, mapping: dict[str, Any]) -> None:
        self._add('HSET', key, *[x for field, value in mapping.items() for x in (field, value)])


class GroupCommit:
    """Commits steps ``(key, write)`` of this process's threads, many at once (see the module's docstring)."""

    def __init__(self, connection: Any, *, head: str, replica_wait: Any = None) -> None:
        """``head``: the hash holding the chain's last ``seq`` and ``hash``; ``replica_wait``: a
        :class:`~bot.adapters.redis_connect.ReplicaWait` when each commit must reach a replica (with sentinels)."""
        self.redis, self.head, self.replica_wait = connection, head, replica_wait
        self._steps: list[_Step] = []
        self._steps_lock = threading.Lock()
        self._committing = False
        self._script = self.redis.register_script(_APPLY)

    def apply(self, key: str | None, write: Callable[[Writes, str | None], Any]) -> Any:
        """One atomic step on a request (``key``: what ``write`` is handed; None for none) and the audit chain.

        ``write`` writes down its writes and returns the step's answer; a later step on the same request sees what
        an earlier one in the batch wrote; a step that raises (the transition refused) is that step's answer only.
        The thread whose step comes first while none is committing does the committing, and hands it on to the
        first one still waiting.
        """
        step = _Step(key, write)
        with self._steps_lock:
            self._steps.append(step)
            if not self._committing:
                self._committing = step.leads = True
        while not step.finished:
            if step.leads:
                step.leads = False
                self._commit_waiting()  # this step is the first waiting: it is in this batch
            else:
                step.wake.wait(1.0)  # (woken when committed, or asked to commit; the timeout is only a safety net)
                step.wake.clear()
        if step.error is not None:
            raise step.error
        return step.value

    def _commit_waiting(self) -> None:
        with self._steps_lock:
            batch, self._steps[:] = self._steps[:COMMIT_BATCH], self._steps[COMMIT_BATCH:]
        try:
            self._commit(batch)
        finally:
            with self._steps_lock:
                if self._steps:
                    self._steps[0].leads = True
                    self._steps[0].wake.set()
                else:
                    self._committing = False
            for step in batch:
                step.finished = True
                step.wake.set()

    def _commit(self, batch: list[_Step]) -> None:
        head_key = self.head
        try:
            for _ in range(MAX_CONFLICTS):
                keys = list(dict.fromkeys(step.key for step in batch if step.key))
                pipe = self.redis.pipeline(transaction=False)
                pipe.hget(head_key, 'seq')
                pipe.hget(head_key, 'hash')
                for key in keys:
                    pipe.get(key)
                seq, last_hash, *raws = pipe.execute()
                read = dict(zip(keys, raws, strict=True))
                writes = Writes(seq=int(seq or 0), hash=last_hash or GENESIS_HASH)
                outcomes: list[tuple[Any, BaseException | None]] = []
                for step in batch:
                    mark = writes.mark()
                    current = (writes.values.get(step.key) or read[step.key]) if step.key else None
                    try:
                        outcomes.append((step.write(writes, current), None))
                    except Exception as exc:  # this step refused (already decided, not found): its answer alone
                        writes.rollback(mark)
                        outcomes.append((None, exc))
                expected = [[key] if raw is None else [key, raw] for key, raw in read.items()]
                if self._apply_writes(head_key, [seq or '0', json.dumps(expected), json.dumps(writes.all())]):
                    for step, (value, error) in zip(batch, outcomes, strict=True):
                        step.value, step.error = value, error
                    return
            failure: BaseException = RuntimeError(f'the audit chain moved {MAX_CONFLICTS} times in a row')
        except BaseException as exc:  # Redis away: every step of the batch fails with it
            failure = exc
        for step in batch:
            step.error = failure

    def _apply_writes(self, head_key: str, args: list[str]) -> bool:
        """The Lua step; then, when replicas are waited for, ``WAIT`` on the same connection (one round trip)."""
        wait = self.replica_wait
        if wait is None or not wait.wanted():
            return bool(self._script(keys=[head_key], args=args))
        pipe = self.redis.pipeline(transaction=False)
        self._script(keys=[head_key], args=args, client=pipe)
        pipe.execute_command('WAIT', 1, wait.timeout_ms)
        applied, replicas = pipe.execute()
        if applied:
            wait.acked(int(replicas))
        return bool(applied)
