"""Slack side effects of audit events: approval DMs, their updates, requester DMs, the audit channel.

Run by the ``notify`` job on its own queue, so a slow or rate-limited Slack delays messages,
never an ack or a revoke. Driven by the audit event (what happened) and the request's current
state (how things stand now), so a late or repeated job posts the truth, not a stale copy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.adapters.redis_store import RedisStore
from bot.blocks.messages import (
    audit_line,
    build_approval_message,
    build_expiry_warning,
    build_status_message,
    build_warning_closed,
    reminder_text,
    requester_update,
)
from bot.blocks.mrkdwn import SLACK_USER_ID, user
from bot.core.durations import format_duration
from bot.core.model import AccessRequest, RequestStatus
from bot.core.policy import Policy

log = structlog.get_logger(__name__)
#: Events that mention the admins in the audit channel and reach each of them by DM.
LOUD_EVENTS = frozenset({'grant.revoke_failed', 'breakglass.used'})
#: Keys of a request's message hash besides the approvers' copies (keyed by user or channel ID).
REQUESTER_COPY, WARNING_COPY = 'requester', 'warning'


class SlackNotifier:
    """Posts and updates what people see in Slack for one audit event at a time."""

    def __init__(
        self, *, client: WebClient, store: RedisStore, policy: Callable[[], Policy], audit_channel: str | None
    ) -> None:
        self.client, self.store, self.policy, self.audit_channel = client, store, policy, audit_channel
        self._email_ids: dict[str, str | None] = {}

    def handle(self, seq: int) -> None:
        """Do everything Slack should show for audit event ``seq``."""
        record = self.store.audit_event(seq)
        if record is None:
            log.warning('notify.missing_event', seq=seq)
            return
        loud = record['event'] in LOUD_EVENTS
        policy = self.policy()
        alerted = set(policy.admins) if loud else set()
        if record['event'] == 'breakglass.used' and (rule := policy.rule_named(record.get('rule') or '')):
            alerted |= {i for step in rule.steps for i in policy.resolve(step.approvers)}  # every approver too
        requester = ((record.get('request') or {}).get('requester') or {}).get('slack_id')
        admins = [a for a in self._slack_ids(frozenset(alerted)) if a != requester]
        line = audit_line(record)
        if self.audit_channel:
            mentions = (':rotating_light: ' + ' '.join(user(a) for a in admins) + ' ') if loud else ''
            self._post(self.audit_channel, mentions + line)
        for admin in admins:
            self.dm(admin, ':rotating_light: ' + line)
        request_id = (record.get('request') or {}).get('id')
        request = self.store.get(request_id) if request_id else None
        if request is None:
            return
        event = record['event']
        rule = policy.rule_named(request.rule)
        if event == 'request.created':
            self._post_status(request, policy)
        if event in ('request.created', 'request.approved') and request.status is RequestStatus.PENDING:
            self._ask_approvers(request, policy)
        if event != 'request.created':
            self._update_copies(request, policy, event)
        text = requester_update(event, request, rule)
        if text and request.requester.slack_id:
            self.dm(request.requester.slack_id, text)

    def remind(self, request_id: str, number: int) -> None:
        """Nudge the approvers of the current step who have not decided; a stalled step reaches the next people."""
        request = self.store.get(request_id)
        if request is None or request.status is not RequestStatus.PENDING:
            return
        policy = self.policy()
        rule = policy.rule_named(request.rule)
        if rule is None:
            return
        waiting = format_duration(int(time.time() - request.created_at))
        text = reminder_text(request, number, waiting)
        if rule.notify:
            for channel in rule.notify:
                self._post(channel, text)
            return
        decided = {a.by.slack_id for a in request.approvals}
        for user_id in self._slack_ids(policy.step_approvers(rule, request.step)):
            if user_id != request.requester.slack_id and user_id not in decided:
                self.dm(user_id, text)

    def warn_expiry(self, request_id: str) -> None:
        """The "ends soon" DM, unless the grant ended or was extended since the warning was scheduled."""
        request = self.store.get(request_id)
        warn_at = request.warning_at() if request else None
        if request is None or request.status is not RequestStatus.ACTIVE or warn_at is None:
            return
        if warn_at - time.time() > 5 or not request.requester.slack_id:
            return  # extended meanwhile: a new warning is scheduled
        rule = self.policy().rule_named(request.rule)
        # Offer as long again as the grant so far, within the rule's default duration and its cap.
        extra = min(rule.timeout - request.duration, rule.default_duration, request.duration) if rule else 0
        text, blocks = build_expiry_warning(request, extra)
        channel, ts = self.dm(request.requester.slack_id, text, blocks)
        self.store.add_message(request.id, WARNING_COPY, f'{channel}|{ts}')  # its buttons go when the grant ends

    def dm(self, user_id: str, text: str, blocks: list[dict[str, Any]] | None = None) -> tuple[str, str]:
        """Open (or reuse) the DM with ``user_id`` and post; returns (channel, ts)."""
        channel = self.client.conversations_open(users=user_id)['channel']['id']
        answer = self._post(channel, text, blocks)
        return channel, str(answer['ts'])

    def _post(self, channel: str, text: str, blocks: list[dict[str, Any]] | None = None) -> Any:
        """Every message jit posts: without link or media previews, so no URL someone wrote is fetched or shown."""
        return self.client.chat_postMessage(channel=channel, text=text, blocks=blocks, unfurl_links=False,
                                            unfurl_media=False)  # fmt: skip

    def _ask_approvers(self, request: AccessRequest, policy: Policy) -> None:
        """Message the current step's approvers (each once), or the rule's ``notify`` channels."""
        rule = policy.rule_named(request.rule)
        if rule is None:
            return
        text, blocks = build_approval_message(request, rule)
        posted = self.store.messages(request.id)
        if rule.notify:
            for channel in rule.notify:
                if channel not in posted:
                    answer = self._post(channel, text, blocks)
                    self.store.add_message(request.id, channel, f"{answer['channel']}|{answer['ts']}")
            return
        for user_id in self._slack_ids(policy.step_approvers(rule, request.step)):
            if request.requester.slack_id == user_id or user_id in posted:
                continue  # the requester gets no copy of their own request to approve
            channel, ts = self.dm(user_id, text, blocks)
            self.store.add_message(request.id, user_id, f'{channel}|{ts}')

    def _post_status(self, request: AccessRequest, policy: Policy) -> None:
        """The requester's status message, updated in place with every step from now on."""
        if not request.requester.slack_id or REQUESTER_COPY in self.store.messages(request.id):
            return
        text, blocks = build_status_message(request, policy.rule_named(request.rule))
        channel, ts = self.dm(request.requester.slack_id, text, blocks)
        self.store.add_message(request.id, REQUESTER_COPY, f'{channel}|{ts}')

    def _update_copies(self, request: AccessRequest, policy: Policy, event: str) -> None:
        """Every copy shows the same state, with buttons only where its reader may still use them: an
        approver who has decided, or whose step is past, and every copy once the request is decided."""
        rule = policy.rule_named(request.rule)
        pending = request.status is RequestStatus.PENDING
        deciders = set(self._slack_ids(policy.step_approvers(rule, request.step))) if rule and pending else set()
        deciders -= {a.by.slack_id for a in request.approvals}
        for key, ref in self.store.messages(request.id).items():
            if key == REQUESTER_COPY:
                text, blocks = build_status_message(request, rule)
            elif key == WARNING_COPY:
                if request.status is RequestStatus.ACTIVE:
                    continue  # still running (extended, maybe): Extend and Release still work
                text, blocks = build_warning_closed(request)
            else:  # an approver's DM (keyed by user ID) or a notify channel, where anyone there may act
                can_decide = pending and (key in deciders or not SLACK_USER_ID.fullmatch(key))
                text, blocks = build_approval_message(request, rule, can_decide=can_decide)
            channel, _, ts = ref.partition('|')
            try:
                self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
            except SlackApiError as exc:
                log.warning(
                    'notify.update_failed', request_id=request.id, channel=channel, error=exc.response.get('error')
                )

    def _slack_ids(self, identities: frozenset[str]) -> list[str]:
        """Policy identities to Slack user IDs: IDs as they are, emails through users.lookupByEmail."""
        out: set[str] = set()
        emails = sorted(i for i in identities if '@' in i)
        for ident in identities:
            if SLACK_USER_ID.fullmatch(ident):
                out.add(ident)
        for email in emails:
            if email not in self._email_ids:
                try:
                    self._email_ids[email] = self.client.users_lookupByEmail(email=email)['user']['id']
                except SlackApiError:
                    log.warning('notify.unknown_approver', email=email)
                    self._email_ids[email] = None
            user_id = self._email_ids[email]
            if user_id:
                out.add(user_id)
        return sorted(out)
