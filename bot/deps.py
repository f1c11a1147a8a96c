"""Everything the processes share, built once by the ``jit`` command and passed down.

``Deps`` is attached to Bolt's context by a middleware (listeners take ``context``) and handed
to the workers' jobs; nothing reads it from a module global.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import redis

from bot.adapters.metrics import PolicyLoadsCounted, PrometheusMeter
from bot.adapters.policy_source import PolicySource
from bot.adapters.redis_connect import ReplicaWait, redis_client, redis_location
from bot.adapters.redis_health import wait_for_redis
from bot.adapters.redis_store import RedisStore
from bot.adapters.rq_queue import RQJobQueue
from bot.adapters.slack_directory import SlackDirectory
from bot.settings import Settings
from bot.usecases.decide_request import ApproveRequest, DenyRequest
from bot.usecases.end_access import EndAccess
from bot.usecases.extend_grant import ExtendGrant
from bot.usecases.record_policy import RecordPolicyChange
from bot.usecases.ssh_keys import SshKeys
from bot.usecases.submit_request import SubmitRequest, new_request_id


class SystemClock:
    """The wall clock, in Unix seconds."""

    def now(self) -> float:
        return time.time()


@dataclass
class Deps:
    """The wired application: adapters and the use cases built on them."""

    settings: Settings
    redis: redis.Redis
    store: RedisStore
    queue: RQJobQueue
    policy: PolicySource
    clock: SystemClock
    submit: SubmitRequest
    approve: ApproveRequest
    deny: DenyRequest
    directory: SlackDirectory
    end: EndAccess
    extend: ExtendGrant
    ssh_keys: SshKeys


def connect_redis(settings: Settings) -> redis.Redis:
    """One client for the process; ``decode_responses`` so the store sees ``str``.

    RQ needs bytes, so the queue gets its own client (:func:`connect_rq`) built here too. Both come from
    ``bot.adapters.redis_connect``: ``REDIS_URL``, or the primary the sentinels name.
    """
    return redis_client(settings, decode_responses=True, health_check_interval=30, socket_timeout=10,
                        socket_connect_timeout=5, retry_on_timeout=True)  # fmt: skip


def connect_rq(settings: Settings) -> redis.Redis:
    """The queue's client (bytes, as RQ needs); a worker's job loops build theirs with ``workers.supervise``."""
    return redis_client(settings, decode_responses=False, socket_timeout=10, socket_connect_timeout=5)


def _announce_when_reachable(policy: PolicySource, conn: redis.Redis, where: str) -> None:
    """Record the policy in force now, or, with Redis away at start, once it answers (the process serves
    meanwhile, ``/readyz`` saying 503)."""
    try:
        policy.announce()
        return
    except redis.RedisError:
        pass

    def later() -> None:
        while True:
            wait_for_redis(conn, where)
            try:
                policy.announce()
                return
            except redis.RedisError:
                continue

    threading.Thread(target=later, name='jit-announce-policy', daemon=True).start()


def build_deps(
    settings: Settings, *, providers: Collection[str], record_policy: bool = False,
    initial_policy: Mapping[str, str] | None = None,
) -> Deps:  # fmt: skip
    """Wire the adapters and use cases; loads the policy (raising PolicyConfigError when it is bad).

    Args:
        record_policy: write ``policy.loaded`` audit events for the policy in force and each change
            (the web process does; every process would only add leases that say "already done").
    """
    conn = connect_redis(settings)
    clock = SystemClock()
    # With sentinels, each step waits until a replica has it, so a failover does not lose it (redis_connect).
    replica_wait = ReplicaWait() if settings.redis_sentinels else None
    store = RedisStore(conn, clock=clock, prefix=settings.redis_prefix, replica_wait=replica_wait)
    queue = RQJobQueue(connect_rq(settings))
    policy = PolicySource(settings.policy_dir, providers=providers, initial=initial_policy)
    policy.observer = PolicyLoadsCounted(RecordPolicyChange(store=store) if record_policy else None)
    if record_policy:
        _announce_when_reachable(policy, conn, redis_location(settings))
    meter = PrometheusMeter()
    return Deps(
        settings=settings, redis=conn, store=store, queue=queue, policy=policy, clock=clock,
        submit=SubmitRequest(store=store, queue=queue, policy=policy, clock=clock,
                             per_hour=settings.requests_per_hour, max_open=settings.max_open_requests, meter=meter),
        approve=ApproveRequest(store=store, queue=queue, policy=policy, clock=clock, meter=meter),
        deny=DenyRequest(store=store, queue=queue, policy=policy, meter=meter), directory=SlackDirectory(),
        end=EndAccess(store=store, queue=queue, policy=policy, clock=clock),
        extend=ExtendGrant(store=store, queue=queue, policy=policy, clock=clock, new_id=new_request_id,
                           per_hour=settings.requests_per_hour, max_open=settings.max_open_requests),
        ssh_keys=SshKeys(store=store, clock=clock),
    )  # fmt: skip
