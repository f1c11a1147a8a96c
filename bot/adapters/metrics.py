"""Prometheus metrics: ``/metrics`` on ``jit serve``, and on ``jit worker``'s own port (``JIT_METRICS_PORT``).

===========================================  =========  ===================================================
metric                                       type       labels
===========================================  =========  ===================================================
``jit_requests_total``                       counter    ``surface`` (slack, api), ``outcome`` (pending,
                                                        approved, denied, limited, refused)
``jit_decisions_total``                      counter    ``rule``, ``outcome`` (approved, pending, denied,
                                                        refused; a refused click's rule is ``-``)
``jit_grants_total``                         counter    ``provider``, ``outcome`` (``GrantOutcome``)
``jit_revokes_total``                        counter    ``provider``, ``outcome`` (``RevokeOutcome``)
``jit_grant_seconds``                        histogram  ``provider``: last approval to active
``jit_revoke_lateness_seconds``              histogram  ``provider``: the grant's end to the access ended
``jit_slack_api_calls_total``                counter    ``method``
``jit_slack_api_errors_total``               counter    ``method``, ``error`` (Slack's error code)
``jit_policy_loads_total``                   counter    ``outcome`` (loaded, rejected)
``jit_active_grants``                        gauge      (worker, read from Redis at each scrape)
``jit_revoke_failed_grants``                 gauge      (worker) grants whose revoke keeps failing
``jit_revokes_due``                          gauge      (worker) grants past their end, not yet revoked
``jit_pending_requests``                     gauge      (worker) requests waiting for approvers
``jit_queue_jobs``                           gauge      (worker) ``queue``: jobs waiting in each RQ queue
``jit_audit_sink_lag_events``                gauge      (worker) ``sink``: audit events not yet delivered
===========================================  =========  ===================================================

No label holds a user, a request ID or anything typed: every label value comes from a bounded set (the
policy's rules and providers, Slack's method names and error codes, jit's own words).

``jit worker`` runs several processes (the notify process, more access processes): each writes its counters
to ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode, set up by
:func:`bot.adapters.metrics_dir.use_worker_dir` before this module is imported), and the worker's ``/metrics``
adds them up. The gauges are read from Redis at scrape time (:class:`StoreGauges`), so they are right whichever
process, or worker, changed them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = structlog.get_logger(__name__)

#: Grant latency and revoke lateness: from a few milliseconds (a burst at a quick target) to minutes (a
#: provider down, retried with backoff).
SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

REQUESTS = Counter('jit_requests', 'Requests asked for, by surface and what became of them', ['surface', 'outcome'])
DECISIONS = Counter('jit_decisions', "Approvers' clicks, by rule and outcome", ['rule', 'outcome'])
GRANTS = Counter('jit_grants', 'Grant attempts, by provider and outcome', ['provider', 'outcome'])
REVOKES = Counter('jit_revokes', 'Revoke attempts that reached a provider, by outcome', ['provider', 'outcome'])
GRANT_SECONDS = Histogram('jit_grant_seconds', 'From the approval to active', ['provider'], buckets=SECONDS)
REVOKE_LATENESS = Histogram('jit_revoke_lateness_seconds', 'From the end of a grant to its revoke', ['provider'],
                            buckets=SECONDS)  # fmt: skip
SLACK_CALLS = Counter('jit_slack_api_calls', 'Slack Web API calls, by method', ['method'])
SLACK_ERRORS = Counter('jit_slack_api_errors', 'Slack Web API calls Slack refused, by error', ['method', 'error'])
POLICY_LOADS = Counter('jit_policy_loads', 'Policy loads, by outcome (a rejected one keeps the last)', ['outcome'])


class PrometheusMeter:
    """The use cases' :class:`~bot.core.ports.Meter`, counted in this process's metrics."""

    def filed(self, surface: str, outcome: str) -> None:
        REQUESTS.labels(surface=surface, outcome=outcome).inc()

    def decided(self, rule: str, outcome: str) -> None:
        DECISIONS.labels(rule=rule, outcome=outcome).inc()

    def granted(self, provider: str, outcome: str, seconds: float | None = None) -> None:
        GRANTS.labels(provider=provider, outcome=str(outcome)).inc()
        if seconds is not None:
            GRANT_SECONDS.labels(provider=provider).observe(max(0.0, seconds))

    def revoked(self, provider: str, outcome: str, lateness: float | None = None) -> None:
        REVOKES.labels(provider=provider, outcome=str(outcome)).inc()
        if lateness is not None:
            REVOKE_LATENESS.labels(provider=provider).observe(max(0.0, lateness))


class PolicyLoadsCounted:
    """A policy observer that counts loads and rejections, then tells the observer it wraps (if any)."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner

    def loaded(self, *args: Any, **kwargs: Any) -> None:
        POLICY_LOADS.labels(outcome='loaded').inc()
        if self.inner is not None:
            self.inner.loaded(*args, **kwargs)

    def rejected(self, *args: Any, **kwargs: Any) -> None:
        POLICY_LOADS.labels(outcome='rejected').inc()
        if self.inner is not None:
            self.inner.rejected(*args, **kwargs)


def _slack_error(exc: SlackApiError) -> str:
    error = exc.response.get('error') if exc.response is not None else None
    return error if isinstance(error, str) and len(error) <= 64 else 'unknown'


class CountedWebClient(WebClient):
    """slack_sdk's client, counting each Web API call and each error Slack answered (the worker's messages)."""

    def api_call(self, api_method: str, **kwargs: Any) -> Any:
        SLACK_CALLS.labels(method=api_method).inc()
        try:
            return super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            SLACK_ERRORS.labels(method=api_method, error=_slack_error(exc)).inc()
            raise


class CountedAsyncWebClient(AsyncWebClient):
    """The same for Bolt's async client (``jit serve``)."""

    async def api_call(self, api_method: str, **kwargs: Any) -> Any:
        SLACK_CALLS.labels(method=api_method).inc()
        try:
            return await super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            SLACK_ERRORS.labels(method=api_method, error=_slack_error(exc)).inc()
            raise


class StoreGauges(Collector):
    """What stands now, read from Redis at each scrape: grants, revokes due, waiting requests, queues, sinks."""

    def __init__(self, redis: Any, *, prefix: str, queues: dict[str, Any], clock: Any = time) -> None:
        """``redis``: a client with ``decode_responses=True``; ``queues``: name -> RQ queue (``count``)."""
        self.redis, self.prefix, self.queues, self.clock = redis, prefix, queues, clock

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._collect()
        except Exception as exc:  # Redis away: the scrape still answers, without these (and says why in the log)
            log.warning('metrics.gauges_unavailable', error=type(exc).__name__)

    def _collect(self) -> Iterator[Metric]:
        p, now = self.prefix, self.clock.time()
        due_key = f'{p}grants:due'
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcount(due_key, '-inf', now)
        pipe.zrangebyscore(due_key, now, '+inf')
        pipe.zcard(f'{p}pending')
        pipe.hget(f'{p}audit:head', 'seq')
        pipe.zcard(f'{p}outbox:due')
        revokes_due, live_ids, pending, head, outbox = pipe.execute()
        statuses = self._statuses(live_ids)
        yield GaugeMetricFamily('jit_active_grants', 'Grants active now', value=statuses.count('active'))
        yield GaugeMetricFamily('jit_revoke_failed_grants', 'Grants whose revoke keeps failing (admins alerted)',
                                value=statuses.count('revoke_failed'))  # fmt: skip
        yield GaugeMetricFamily('jit_revokes_due', 'Grants past their end whose revoke has not finished',
                                value=revokes_due)  # fmt: skip
        yield GaugeMetricFamily('jit_pending_requests', 'Requests waiting for approvers', value=pending)
        yield GaugeMetricFamily('jit_outbox_queued', 'Approval emails and Teams cards not sent yet (retries included)',
                                value=outbox)  # fmt: skip
        queues = GaugeMetricFamily('jit_queue_jobs', 'Jobs waiting in each RQ queue', labels=['queue'])
        for name, queue in sorted(self.queues.items()):
            queues.add_metric([name], queue.count)
        yield queues
        lag = GaugeMetricFamily('jit_audit_sink_lag_events', 'Audit events not yet delivered to each sink',
                                labels=['sink'])  # fmt: skip
        for key in sorted(self.redis.scan_iter(match=f'{p}audit:sink:*', count=100)):
            delivered = int(self.redis.hget(key, 'seq') or 0)
            lag.add_metric([key.removeprefix(f'{p}audit:sink:')], max(0, int(head or 0) - delivered))
        yield lag

    def _statuses(self, ids: list[str]) -> list[str]:
        """The status of each request, read in slices (a scrape never holds Redis for one huge MGET)."""
        out: list[str] = []
        for start in range(0, len(ids), 500):
            raws = self.redis.mget([f'{self.prefix}req:{i}' for i in ids[start : start + 500]])
            out += [json.loads(raw).get('status', '') for raw in raws if raw]
        return out


def serve_worker_metrics(port: int, gauges: Collector) -> None:
    """``/metrics`` of ``jit worker`` on ``port``: every process's counters added up, and the gauges."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(gauges)
    start_http_server(port, registry=registry)
    log.info('metrics.serving', port=port)
