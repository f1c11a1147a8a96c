"""Approvals outside Slack: the approval emails and Teams cards, sent by a follower of the audit stream.

Like the Slack messages (:mod:`workers.notify_follower`), these follow the audit trail: a request filed, a step
approved, break-glass used, a request decided. They have a follower of their own (lease ``outbox-follower``,
cursor ``outbox:cursor``) in the worker's notify process, so an SMTP server or a Teams webhook that is down or
slow delays these and nothing else: never an ack, a Slack message, a grant or a revoke.

What an event calls for is queued in the outbox (:mod:`bot.adapters.outbox`), then sent; each delivery is
sent once. One that fails is tried again with backoff (:data:`BACKOFF`, or the server's ``Retry-After`` when
longer), at most :data:`MAX_ATTEMPTS` times, and dropped when it is no longer useful (the request was decided, or
moved to another step). Its first failure and the last one are ``delivery.failed`` audit events; the first of a
spell per channel (email, Teams) mentions the admins (``detail.alert``), so an outage is heard of once, not once
per message.

Each delivery is built when it is sent, from the request as it stands then: a late email still shows the
truth, and a link is minted for the address it goes to (:mod:`bot.links`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import redis
import structlog

from bot.adapters.outbox import Delivery, OutboxStore
from bot.core.errors import DeliveryError
from bot.core.model import AccessRequest, AuditEvent, AuditName, Principal, RequestStatus
from bot.core.policy import ASK_SLACK, Policy, Rule
from bot.core.progress import outcome_text, waiting_text
from bot.links import DEFAULT_LIFETIME, LinkSigner
from bot.usecases.lease import held_lease

log = structlog.get_logger(__name__)

#: Seconds before each retry of a failed delivery: about an hour and a half in all.
BACKOFF = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0)
MAX_ATTEMPTS = len(BACKOFF) + 1
#: The follower's lease (renewed while it works) and how long it keeps it before taking turns again.
LEASE, HOLD = 15.0, 60.0
#: Events read per batch; deliveries tried per round.
BATCH, SENDS_PER_ROUND = 200, 20
#: Where following starts when it never did: the events of the last this many seconds.
START_WINDOW = 60.0
#: One alert to the admins per channel in this long, however many deliveries fail.
ALERT_EVERY = 900.0
#: The events that may call for an email or a card.
WATCHED = frozenset({AuditName.REQUEST_CREATED, AuditName.REQUEST_APPROVED, AuditName.REQUEST_DENIED,
                     AuditName.REQUEST_EXPIRED, AuditName.REQUEST_CANCELLED, AuditName.BREAKGLASS_USED})  # fmt: skip


class Mailer(Protocol):
    def send(self, msg: Any) -> None: ...


class Poster(Protocol):
    def post(self, url: str, payload: dict[str, Any]) -> None: ...


class OutboxStoreLike(Protocol):
    """What the outbox reads and writes in the request store (a :class:`~bot.adapters.redis_store.RedisStore`)."""

    def get(self, request_id: str) -> AccessRequest | None: ...
    def record(self, event: AuditEvent) -> int: ...
    def lease(self, name: str, seconds: float) -> bool: ...
    def audit_events(self, after: int, count: int) -> list[dict[str, Any]]: ...
    def wait_for_events(self, after: int, timeout: float) -> bool: ...
    def follower_cursor(self, name: str, window: float) -> int: ...
    def advance_follower_cursor(self, name: str, seq: int) -> None: ...


class Outbox:
    """What each event calls for (:meth:`plan`), and sending what is due (:meth:`send_due`)."""

    def __init__(
        self, *, store: OutboxStoreLike, outbox: OutboxStore, policy: Callable[[], Policy],
        public_url: str | None, signer: LinkSigner | None, mail_from: str | None,
        mailer: Mailer | None, teams: Poster | None, environ: dict[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.store, self.outbox, self.policy = store, outbox, policy
        self.public_url, self.signer, self.mail_from = (public_url or '').rstrip('/'), signer, mail_from
        self.mailer, self.teams = mailer, teams
        self.environ = os.environ if environ is None else environ
        self.clock = clock

    # -- what to send ------------------------------------------------------------------------------------
    def plan(self, records: list[dict[str, Any]]) -> int:
        """Queue what these events call for; returns how many deliveries were queued."""
        policy, queued, now = self.policy(), 0, self.clock()
        for record in records:
            # The event names its rule: a rule that asks in Slack alone (most) costs no read of the request.
            rule = policy.rule_named(record.get('rule') or '') if record.get('event') in WATCHED else None
            if rule is None or tuple(rule.ask) == (ASK_SLACK,):
                continue
            request_id = (record.get('request') or {}).get('id')
            request = self.store.get(request_id) if request_id else None
            if request is None or request.rule != rule.name:
                continue
            for delivery in self._called_for(record['event'], request, rule, policy):
                queued += self.outbox.add(delivery, now)
        return queued

    def _called_for(self, event: str, request: AccessRequest, rule: Rule, policy: Policy) -> list[Delivery]:
        out: list[Delivery] = []
        if event == AuditName.BREAKGLASS_USED:
            if rule.asks_email:
                everyone = policy.rule_approvers(rule)
                out += [Delivery('notice-email', request.id, e, 'breakglass') for e in sorted(everyone) if '@' in e]
            out += [Delivery('notice-teams', request.id, ch, 'breakglass') for ch in rule.teams_channels]
            return out
        if request.status is RequestStatus.PENDING and event in (AuditName.REQUEST_CREATED,
                                                                 AuditName.REQUEST_APPROVED):  # fmt: skip
            step = str(request.step)
            if rule.asks_email:
                out += [Delivery('ask-email', request.id, e, step) for e in self._to_ask(request, rule, policy)]
            out += [Delivery('ask-teams', request.id, ch, step) for ch in rule.teams_channels]
        elif request.status is not RequestStatus.PENDING and event != AuditName.REQUEST_CREATED:
            for ch in rule.teams_channels:  # a card asked there: say how it ended
                if any(self.outbox.was_sent(Delivery('ask-teams', request.id, ch, str(i)))
                       for i in range(len(rule.steps))):  # fmt: skip
                    out.append(Delivery('outcome-teams', request.id, ch, 'final'))
        return out

    @staticmethod
    def _to_ask(request: AccessRequest, rule: Rule, policy: Policy) -> list[str]:
        """The addresses of the current step's approvers who may still decide (not the requester, nor anyone
        who approved already)."""
        ids = policy.step_approvers(rule, request.step)
        return sorted(e for e in ids if '@' in e and not Principal(email=e).same_as(request.requester)
                      and not any(Principal(email=e).same_as(a.by) for a in request.approvals))  # fmt: skip

    # -- sending ----------------------------------------------------------------------------------------
    def send_due(self, limit: int = SENDS_PER_ROUND) -> int:
        """Try the deliveries that are due; returns how many were sent."""
        sent = 0
        for delivery in self.outbox.due(self.clock(), limit):
            try:
                if self.send(delivery):
                    sent += 1
                self.outbox.sent(delivery)
            except DeliveryError as exc:
                self._failed(delivery, exc)
            except ValueError as exc:  # the message cannot be built (an address the policy names is not one)
                self._failed(delivery, DeliveryError(f'cannot be sent: {exc}', transient=False))
            except redis.RedisError:
                raise  # Redis away: the follower waits and tries the same deliveries again
            except Exception as exc:  # a fault of jit's own with this one: tried again later, never ahead of the rest
                log.exception('outbox.delivery_crashed', kind=delivery.kind, request_id=delivery.request_id)
                self._failed(delivery, DeliveryError(f'jit could not send it ({type(exc).__name__})', transient=True))
        return sent

    def send(self, delivery: Delivery) -> bool:
        """Build and send one delivery; False when it is no longer needed (nothing sent). Raises DeliveryError."""
        request = self.store.get(delivery.request_id)
        policy = self.policy()
        rule = policy.rule_named(request.rule) if request else None
        if request is None or rule is None or not self._still_useful(delivery, request, rule):
            return False
        kind = delivery.kind
        if kind in ('ask-email', 'link-email'):
            via = 'teams' if kind == 'link-email' else 'email'
            approve, deny = self._links(request, email=delivery.to, via=via, route='')
            from bot.mail.message import approval_email

            self._mail(approval_email(request, rule, to=delivery.to, sender=self._sender(), approve_url=approve,
                                      deny_url=deny, waiting=waiting_text(request, rule),
                                      asked_for=kind == 'link-email'))  # fmt: skip
        elif kind == 'notice-email':
            from bot.mail.message import breakglass_email

            self._mail(breakglass_email(request, rule, to=delivery.to, sender=self._sender()))
        elif kind == 'ask-teams':
            from bot.teams.card import approval_card

            approve, deny = self._links(request, email='', via='teams', route='teams/')
            self._post(delivery.to, approval_card(request, rule, approve_url=approve, deny_url=deny,
                                                  waiting=waiting_text(request, rule)), policy)  # fmt: skip
        elif kind == 'outcome-teams':
            from bot.teams.card import outcome_card

            self._post(delivery.to, outcome_card(request, rule, outcome=outcome_text(request)), policy)
        elif kind == 'notice-teams':
            from bot.teams.card import breakglass_card

            self._post(delivery.to, breakglass_card(request, rule), policy)
        else:
            return False
        log.info('outbox.sent', kind=kind, request_id=request.id, channel=delivery.channel)
        return True

    @staticmethod
    def _still_useful(delivery: Delivery, request: AccessRequest, rule: Rule) -> bool:
        if delivery.kind == 'ask-email' or delivery.kind == 'ask-teams':
            return request.status is RequestStatus.PENDING and str(request.step) == delivery.step
        if delivery.kind == 'link-email':
            return request.status is RequestStatus.PENDING and rule.decides_via('teams')
        return True

    def _links(self, request: AccessRequest, *, email: str, via: str, route: str) -> tuple[str, str]:
        if self.signer is None or not self.public_url:
            raise DeliveryError('JIT_PUBLIC_URL and JIT_LINK_KEY must be set for links to decide by', transient=False)
        expires = request.pending_until or self.clock() + DEFAULT_LIFETIME
        token = self.signer.mint(request_id=request.id, email=email, digest=request.digest(), via=via,
                                 expires_at=expires)  # fmt: skip
        base = f'{self.public_url}/decide/{route}{token}'
        return f'{base}?do=approve', f'{base}?do=deny'

    def _sender(self) -> str:
        if self.mailer is None or not self.mail_from:
            raise DeliveryError('JIT_SMTP_URL and JIT_MAIL_FROM must be set to send approval emails', transient=False)
        return self.mail_from

    def _mail(self, msg: Any) -> None:
        assert self.mailer is not None  # _sender() checked it
        self.mailer.send(msg)

    def _post(self, channel: str, payload: dict[str, Any], policy: Policy) -> None:
        teams = policy.teams.get(channel)
        if teams is None:
            raise DeliveryError(f'the policy has no Teams channel {channel!r} any more', transient=False)
        name = teams.webhook.removeprefix('env:')
        url = self.environ.get(name)
        if not url:
            raise DeliveryError(f'the environment variable {name} (Teams channel {channel!r}) is not set',
                                transient=False)  # fmt: skip
        if self.teams is None:
            raise DeliveryError('no Teams sender is configured', transient=False)
        self.teams.post(url, payload)

    def _failed(self, delivery: Delivery, exc: DeliveryError) -> None:
        now = self.clock()
        attempts = self.outbox.failed(delivery)
        final = not exc.transient or attempts >= MAX_ATTEMPTS
        log.warning('outbox.failed', kind=delivery.kind, request_id=delivery.request_id, attempts=attempts,
                    final=final, error=str(exc)[:300])  # fmt: skip
        if final:
            self.outbox.drop(delivery)
        else:
            # Retry-After is honoured up to the longest backoff: a huge one must not park a delivery for good.
            delay = max(BACKOFF[min(attempts - 1, len(BACKOFF) - 1)], min(exc.retry_after or 0.0, BACKOFF[-1]))
            self.outbox.retry_at(delivery, now + delay)
        if attempts == 1 or final:
            self._record_failure(delivery, exc, attempts=attempts, final=final)

    def _record_failure(self, delivery: Delivery, exc: DeliveryError, *, attempts: int, final: bool) -> None:
        request = self.store.get(delivery.request_id)
        alert = self.store.lease(f'outbox-alert:{delivery.channel}', ALERT_EVERY)
        fields: dict[str, Any] = {
            'outcome': 'gave_up' if final else 'retrying', 'error': str(exc)[:500],
            'detail': {'channel': delivery.channel, 'kind': delivery.kind, 'to': delivery.to, 'attempts': attempts,
                       'alert': alert},
        }  # fmt: skip
        event = (AuditEvent.about(request, AuditName.DELIVERY_FAILED, 'jit', **fields) if request is not None
                 else AuditEvent(event=AuditName.DELIVERY_FAILED, actor='jit', **fields))  # fmt: skip
        self.store.record(event)


class OutboxFollower:
    """A daemon thread: follows the audit stream, queues what it calls for, sends what is due."""

    def __init__(self, *, store: OutboxStoreLike, outbox: Outbox, block: float = 1.0) -> None:
        self.store, self.outbox, self.block = store, outbox, block
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='jit-outbox-follower', daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.block + 15)

    def follow_once(self) -> int:
        """Send what is due, then read and plan the next batch (waiting up to ``block`` for one)."""
        self.outbox.send_due()
        cursor = self.store.follower_cursor('outbox', START_WINDOW)
        records = self.store.audit_events(cursor + 1, BATCH)
        if not records:
            if not self.store.wait_for_events(cursor, self.block):
                return 0
            records = self.store.audit_events(cursor + 1, BATCH)
            if not records:
                return 0
        self.outbox.plan(records)
        self.store.advance_follower_cursor('outbox', records[-1]['seq'])
        self.outbox.send_due()
        return len(records)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with held_lease(self.store, 'outbox-follower', LEASE) as mine:  # type: ignore[arg-type]
                    until = time.monotonic() + HOLD
                    while mine and not self._stop.is_set() and time.monotonic() < until:
                        self.follow_once()
                if not mine:
                    self._stop.wait(1.0)
            except redis.RedisError as exc:
                log.warning('outbox.redis_unavailable', error=str(exc))
                self._stop.wait(1.0)
            except Exception:  # a bug of jit's own: logged, and the loop goes on after a pause
                log.exception('outbox.crashed')
                self._stop.wait(5.0)


class Beside:
    """Several daemon threads started and stopped as one (the notify process runs two followers)."""

    def __init__(self, *threads: Any) -> None:
        self.threads = threads

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        for t in self.threads:
            t.stop()
