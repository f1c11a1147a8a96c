"""The worker's wired dependencies, built once per process.

RQ calls job functions by dotted path with only their arguments, so a job cannot be handed its
dependencies the way a listener is. ``jit worker`` builds them once and installs them here
before it starts working; a job run any other way (``rq worker`` by hand) builds them from the
environment on first use. Tests pass ``deps=`` to the job functions directly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from bot.adapters.metrics import CountedWebClient, PrometheusMeter
from bot.adapters.outbox import OutboxStore
from bot.adapters.slack_notifier import SlackNotifier
from bot.blocks.messages import details_text
from bot.core.model import AccessRequest
from bot.deps import Deps, build_deps
from bot.links import LinkSigner
from bot.sealed_box import seal
from bot.settings import Settings, load_settings
from bot.usecases.grant_access import GrantAccess
from bot.usecases.revoke_access import RevokeAccess
from bot.usecases.revoke_idle import RevokeIdle
from workers.outbox import Outbox
from workers.providers.registry import ProviderRegistry, provider_names
from workers.reconciler import Reconciler
from workers.revoker import Revoker
from workers.sweeper import Sweeper

log = structlog.get_logger(__name__)


@dataclass
class WorkerDeps:
    """What the jobs and the sweeper use."""

    base: Deps
    grant: GrantAccess
    revoke: RevokeAccess
    notifier: SlackNotifier
    providers: ProviderRegistry
    outbox: Outbox


def build_worker_deps(
    settings: Settings, *, registry: ProviderRegistry | None = None, initial_policy: Mapping[str, str] | None = None
) -> WorkerDeps:
    """``initial_policy``: the files of the policy another process of this worker has in force (see PolicySource)."""
    base = build_deps(settings, providers=provider_names(), initial_policy=initial_policy)
    # The ssh provider signs for the key the requester registered with /jit ssh-key.
    providers = registry or ProviderRegistry(options={'ssh': {
        'public_key_for': lambda request: base.store.ssh_key(request.requester.slack_id or '')}})  # fmt: skip
    client = CountedWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url, timeout=15,
                       retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=2),
                                       RateLimitErrorRetryHandler(max_retry_count=3)])  # fmt: skip
    notifier = SlackNotifier(client=client, store=base.store, policy=base.policy, audit_channel=settings.audit_channel)

    def send_details(request: AccessRequest, details: dict[str, Any]) -> None:
        # Shown once, straight from the grant to the requester: never through Redis or a log in the clear.
        if request.requester.slack_id:
            notifier.dm(request.requester.slack_id, details_text(request, details))
        elif request.requester.pipeline and request.recipient_key:
            # Sealed to the pipeline's own key: Redis holds what only that pipeline can open, until the grant ends.
            box = seal(request.recipient_key, details, request_id=request.id)
            ttl = (request.expires_at or base.clock.now() + request.duration) - base.clock.now()
            base.store.put_sealed_details(request.id, box, ttl=max(60.0, ttl))
        else:
            log.warning('details.withheld', request_id=request.id, why='the pipeline sent no public_key')

    meter = PrometheusMeter()
    grant = GrantAccess(store=base.store, queue=base.queue, policy=base.policy, clock=base.clock,
                        provider=providers, on_details=send_details, meter=meter)  # fmt: skip
    revoke = RevokeAccess(store=base.store, queue=base.queue, policy=base.policy, clock=base.clock,
                          provider=providers, meter=meter)  # fmt: skip
    return WorkerDeps(base=base, grant=grant, revoke=revoke, notifier=notifier, providers=providers,
                      outbox=build_outbox(base))  # fmt: skip


def build_outbox(base: Deps) -> Outbox:
    """Approval emails and Teams cards (``workers.outbox``), with what the settings give to send them."""
    from bot.mail.smtp import SmtpMailer
    from bot.teams.webhook import TeamsWebhook

    settings = base.settings
    mailer = (SmtpMailer.from_url(settings.smtp_url, sender=settings.mail_from or '', ca_file=settings.smtp_ca_file)
              if settings.smtp_url else None)  # fmt: skip
    return Outbox(store=base.store, outbox=OutboxStore(base.redis, prefix=settings.redis_prefix), policy=base.policy,
                  public_url=settings.public_url, signer=LinkSigner(settings.link_key) if settings.link_key else None,
                  mail_from=settings.mail_from, mailer=mailer, teams=TeamsWebhook())  # fmt: skip


def build_revoker(deps: WorkerDeps) -> Revoker:
    """The revoker thread of ``jit worker``: every grant ends as it falls due (``grants:due``)."""
    base = deps.base
    return Revoker(connection=base.redis, revoke=deps.revoke, clock=base.clock, prefix=base.settings.redis_prefix)


def build_sweeper(deps: WorkerDeps) -> Sweeper:
    """The sweeper thread of ``jit worker``: overdue revokes, expiries, reminders, and the reconciler."""
    base, settings = deps.base, deps.base.settings
    reconciler = Reconciler(store=base.store, queue=base.queue, policy=base.policy, clock=base.clock,
                            provider=deps.providers)  # fmt: skip
    idle = RevokeIdle(store=base.store, queue=base.queue, policy=base.policy, clock=base.clock, provider=deps.providers)
    return Sweeper(store=base.store, grant=deps.grant, end=base.end, clock=base.clock,
                   interval=settings.sweep_interval, queue=base.queue, remind_after=settings.reminder_after,
                   reconciler=reconciler, reconcile_every=settings.reconcile_interval,
                   idle=idle, idle_every=settings.idle_interval)  # fmt: skip


_current: WorkerDeps | None = None


def install(deps: WorkerDeps) -> None:
    """Make ``deps`` what jobs in this process use."""
    global _current
    _current = deps


def current() -> WorkerDeps:
    """The installed deps, or deps built from the environment on first use."""
    global _current
    if _current is None:
        _current = build_worker_deps(load_settings(os.environ))
    return _current


def serve_metrics(deps: WorkerDeps, port: int) -> None:
    """``/metrics`` of this worker on ``port`` (``JIT_METRICS_PORT``): its processes' counters and the gauges read
    from Redis. A port that cannot be had is logged, and the worker goes on: revokes matter more than metrics."""
    from bot.adapters.metrics import StoreGauges, serve_worker_metrics

    base = deps.base
    queues = {'access': base.queue.access, 'notify': base.queue.notify}
    gauges = StoreGauges(base.redis, prefix=base.settings.redis_prefix, queues=queues)
    try:
        serve_worker_metrics(port, gauges)
    except OSError as exc:
        log.error('metrics.port_unavailable', port=port, error=f'{type(exc).__name__}: {exc}'[:200])
