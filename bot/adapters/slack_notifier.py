"""Slack side effects of audit events: approval DMs, their updates, requester DMs, the audit channel.

Driven by the audit stream itself (:mod:`workers.notify_follower`, in the worker's notify process), so a slow
or rate-limited Slack delays messages, never an ack, a grant or a revoke; and by the request's current state
(how things stand now), so a late or repeated delivery posts the truth, not a stale copy.

What the events of one delivery have in common is sent once: each message copy is updated once to the latest
state (and not at all when it would look the same), and the requester's lines about one request go in one DM.
The audit channel gets a post per event, or, for a backlog, several events' lines to a post (still one line
each). A DM channel, once opened, is reused.

One class of a little over 300 lines: every message jit posts goes through it, and the batching rules, the
copies it keeps up to date and what it remembers having sent are read together.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, MutableSet
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
from bot.core.model import AccessRequest, AuditName, RequestStatus
from bot.core.policy import ASK_SLACK, Policy

log = structlog.get_logger(__name__)
#: Events that mention the admins in the audit channel and reach each of them by DM.
LOUD_EVENTS = frozenset({AuditName.GRANT_REVOKE_FAILED, AuditName.BREAKGLASS_USED})
#: Keys of a request's message hash besides the approvers' copies (keyed by user or channel ID).
REQUESTER_COPY, WARNING_COPY = 'requester', 'warning'
#: From this many audit-channel lines waiting at once, they share posts of at most this many lines and characters.
BACKLOG_LINES, LINES_PER_POST, CHARS_PER_POST = 10, 20, 3500
#: Message copies whose last shown content is remembered (to skip updates that change nothing).
SHOWN_CACHE = 50_000
#: Errors of a DM channel remembered from earlier: it is opened again.
STALE_DM = frozenset({'channel_not_found', 'is_archived', 'not_in_channel'})


def loud(record: dict[str, Any]) -> bool:
    """Whether an event mentions the admins: a revoke failing, break-glass, and the first failure of a spell of
    approval emails or Teams cards not delivered (``detail.alert``; the rest are quiet lines)."""
    if record['event'] in LOUD_EVENTS:
        return True
    return record['event'] == AuditName.DELIVERY_FAILED and bool((record.get('detail') or {}).get('alert'))


class SlackNotifier:
    """Posts and updates what people see in Slack for one audit event at a time."""

    def __init__(
        self, *, client: WebClient, store: RedisStore, policy: Callable[[], Policy], audit_channel: str | None
    ) -> None:
        self.client, self.store, self.policy, self.audit_channel = client, store, policy, audit_channel
        self._email_ids: dict[str, str | None] = {}
        self._dm_channels: dict[str, str] = {}
        self._shown: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def handle(self, seq: int) -> None:
        """Do everything Slack should show for audit event ``seq``."""
        record = self.store.audit_event(seq)
        if record is None:
            log.warning('notify.missing_event', seq=seq)
            return
        self.handle_batch([record])

    def handle_batch(self, records: list[dict[str, Any]], done: MutableSet[str] | None = None) -> None:
        """Everything Slack should show for these events (in stream order), with what they share sent once.

        ``done``: the parts already sent, by key; each part is added once sent. When a part raises (Slack
        unreachable), the caller hands the same events again with the same set, and only what is left is sent.
        A Slack API error on one message (``SlackApiError``) is logged there and does not stop the others.
        """
        done = set() if done is None else done
        policy = self.policy()
        lines: list[str] = []
        first = 0
        by_request: dict[str, list[str]] = {}
        for record in records:
            if loud(record):
                self._part(done, f'lines:{first}', self._post_lines, lines)
                lines = []
                self._part(done, f'alert:{record["seq"]}', self._alert, record, policy)
            else:
                if not lines:
                    first = record['seq']
                lines.append(audit_line(record))
            request_id = (record.get('request') or {}).get('id')
            if request_id:
                by_request.setdefault(request_id, []).append(record['event'])
        self._part(done, f'lines:{first}', self._post_lines, lines)
        for request_id, events in by_request.items():
            self._part(done, f'request:{request_id}', self._show, request_id, events, policy)

    @staticmethod
    def _part(done: MutableSet[str], key: str, step: Callable[..., None], *args: Any) -> None:
        if key in done:
            return
        try:
            step(*args)
        except SlackApiError as exc:  # this message, not the rest: Slack said no to it, and will again
            log.warning('notify.failed', part=key.split(':')[0], error=exc.response.get('error'))
        except OSError:
            raise  # Slack unreachable (connection refused, timed out): the same events again, later
        except Exception:
            # A fault of jit's own with this one event: logged and passed, or it would hold up every message after.
            log.exception('notify.part_crashed', part=key)
        done.add(key)

    def _post_lines(self, lines: list[str]) -> None:
        """The audit channel's lines, one per event: a post each, or, for a backlog, as few posts as fit.

        Slack takes about one message a second per channel: a burst of a thousand revokes posted line by line
        would be rate-limited into a quarter of an hour of backlog, delaying every message behind it.
        """
        if not self.audit_channel:
            return
        if len(lines) < BACKLOG_LINES:
            for line in lines:
                self._post(self.audit_channel, line)
            return
        post: list[str] = []
        for line in lines:
            if post and (len(post) >= LINES_PER_POST or sum(map(len, post)) + len(line) > CHARS_PER_POST):
                self._post(self.audit_channel, '\n'.join(post))
                post = []
            post.append(line)
        if post:
            self._post(self.audit_channel, '\n'.join(post))

    def _alert(self, record: dict[str, Any], policy: Policy) -> None:
        """A loud event: its own audit-channel post mentioning the admins, and a DM to each of them."""
        alerted = set(policy.admins)
        if record['event'] == AuditName.BREAKGLASS_USED and (rule := policy.rule_named(record.get('rule') or '')):
            alerted |= policy.rule_approvers(rule)  # every approver too
        requester = ((record.get('request') or {}).get('requester') or {}).get('slack_id')
        admins = [a for a in self._slack_ids(frozenset(alerted)) if a != requester]
        line = audit_line(record)
        if self.audit_channel:
            self._post(self.audit_channel, ':rotating_light: ' + ' '.join(user(a) for a in admins) + ' ' + line)
        for admin in admins:
            self.dm(admin, ':rotating_light: ' + line)

    def _show(self, request_id: str, events: Collection[str], policy: Policy) -> None:
        """One request after ``events``: its messages brought to where it stands now, its requester told once."""
        request = self.store.get(request_id)
        if request is None:
            return
        rule = policy.rule_named(request.rule)
        if AuditName.REQUEST_CREATED in events:
            self._post_status(request, policy)
        asked = AuditName.REQUEST_CREATED in events or AuditName.REQUEST_APPROVED in events
        if asked and request.status is RequestStatus.PENDING:
            self._ask_approvers(request, policy)
        if any(event != AuditName.REQUEST_CREATED for event in events):
            self._update_copies(request, policy)
        texts = [text for event in events if (text := requester_update(event, request, rule))]
        if texts and request.requester.slack_id:
            self.dm(request.requester.slack_id, '\n'.join(dict.fromkeys(texts)))

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
        if ASK_SLACK not in rule.ask:
            return
        decided = {a.by.slack_id for a in request.approvals}
        for user_id in self._slack_ids(policy.step_approvers(rule, request.step)):
            if user_id != request.requester.slack_id and user_id not in decided:
                self.dm(user_id, text)

    def warn_expiry(self, request_id: str) -> None:
        """The "ends soon" DM, unless the grant ended or was extended since the warning was scheduled."""
        request = self.store.get(request_id)
        warn_at = request.warning_at() if request else None
        if request is None or request.status is not RequestStatus.ACTIVE or warn_at is None or request.ending:
            return  # ended, or ending now (released, revoked by an admin, idle): nothing to warn of
        if warn_at - self.store.clock.now() > 5 or not request.requester.slack_id:
            return  # extended meanwhile: a new warning is scheduled
        rule = self.policy().rule_named(request.rule)
        # Offer as long again as the grant so far, within the rule's default duration and its cap.
        extra = min(rule.max_duration - request.duration, rule.default_duration, request.duration) if rule else 0
        text, blocks = build_expiry_warning(request, extra)
        channel, ts = self.dm(request.requester.slack_id, text, blocks)
        self.store.add_message(request.id, WARNING_COPY, f'{channel}|{ts}')  # its buttons go when the grant ends

    def dm(self, user_id: str, text: str, blocks: list[dict[str, Any]] | None = None) -> tuple[str, str]:
        """Open (or reuse) the DM with ``user_id`` and post; returns (channel, ts).

        A DM channel's ID does not change, so it is opened once per process; one Slack no longer knows is opened again.
        """
        channel = self._dm_channels.get(user_id)
        if channel is not None:
            try:
                return channel, str(self._post(channel, text, blocks)['ts'])
            except SlackApiError as exc:
                if exc.response.get('error') not in STALE_DM:
                    raise
        channel = self._dm_channels[user_id] = self.client.conversations_open(users=user_id)['channel']['id']
        return channel, str(self._post(channel, text, blocks)['ts'])

    def _post(self, channel: str, text: str, blocks: list[dict[str, Any]] | None = None) -> Any:
        """Every message jit posts: without link or media previews, so no URL someone wrote is fetched or shown."""
        answer = self.client.chat_postMessage(channel=channel, text=text, blocks=blocks, unfurl_links=False,
                                              unfurl_media=False)  # fmt: skip
        self._remember(f"{answer['channel']}|{answer['ts']}", text, blocks)
        return answer

    def _remember(self, ref: str, text: str, blocks: list[dict[str, Any]] | None) -> bool:
        """Note what copy ``ref`` shows now; False when it shows exactly that already (nothing to update)."""
        digest = hashlib.blake2b(json.dumps([text, blocks], sort_keys=True).encode(), digest_size=16).hexdigest()
        with self._lock:  # the follower's thread and the reminder and warning jobs' thread share it
            if self._shown.get(ref) == digest:
                return False
            self._shown[ref] = digest
            self._shown.move_to_end(ref)
            while len(self._shown) > SHOWN_CACHE:
                self._shown.popitem(last=False)
        return True

    def _forget(self, ref: str) -> None:
        with self._lock:
            self._shown.pop(ref, None)

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
        if ASK_SLACK not in rule.ask:
            return  # asked by email or in Teams instead (workers.outbox); their Home tab still lets them decide
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

    def _update_copies(self, request: AccessRequest, policy: Policy) -> None:
        """Every copy shows the same state, with buttons only where its reader may still use them: an
        approver who has decided, or whose step is past, and every copy once the request is decided.
        A copy that already shows exactly this is left alone."""
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
                if request.status is RequestStatus.REVOKED and self._delete_warning(request, ref):
                    continue
                text, blocks = build_warning_closed(request)
            else:  # an approver's DM (keyed by user ID) or a notify channel, where anyone there may act
                can_decide = pending and (key in deciders or not SLACK_USER_ID.fullmatch(key))
                text, blocks = build_approval_message(request, rule, can_decide=can_decide)
            channel, _, ts = ref.partition('|')
            if not self._remember(ref, text, blocks):
                continue
            try:
                self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
            except SlackApiError as exc:
                self._forget(ref)
                log.warning(
                    'notify.update_failed', request_id=request.id, channel=channel, error=exc.response.get('error')
                )
            except BaseException:
                self._forget(ref)  # not shown: the next delivery of these events updates it
                raise

    def _delete_warning(self, request: AccessRequest, ref: str) -> bool:
        """The "ends soon" DM goes once the grant has ended: the end is told once, at its time, by the requester's
        "Access ended" DM of the same delivery (an edited warning would keep the time of the warning, before the
        end). False when Slack would not delete it: it is then edited to say the grant ended, without buttons."""
        if not self._remember(ref, '', None):
            return True  # deleted already
        channel, _, ts = ref.partition('|')
        try:
            self.client.chat_delete(channel=channel, ts=ts)
        except SlackApiError as exc:
            if exc.response.get('error') == 'message_not_found':
                return True  # gone already (deleted by an earlier delivery of these events)
            self._forget(ref)
            log.warning('notify.warning_not_deleted', request_id=request.id, error=exc.response.get('error'))
            return False
        except BaseException:
            self._forget(ref)  # not deleted: the next delivery of these events tries again
            raise
        return True

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
