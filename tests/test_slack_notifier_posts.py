"""Every message the notifier posts asks Slack for no link or media previews.

A reason, a ticket or a provider's error may hold a URL: with previews on, Slack would fetch it (telling its
owner who reads the audit channel, and when) and show a preview someone else wrote under jit's name. Each path
that posts (audit channel, admins' DMs, notify channels, approvers' DMs, the requester's status, reminders) is
driven here against a client that records its calls.
"""

from __future__ import annotations

from typing import Any

from bot.adapters.slack_notifier import SlackNotifier
from bot.core.model import AccessRequest, Principal
from bot.core.policy_loader import build_policy

POLICY = build_policy({'p.yaml': """
admins: [U0ADMIN]
resources:
  app: {provider: webhook, roles: [read]}
requests:
  - name: by-dm
    roles: [read]
    approvers: [U0APPR]
  - name: by-channel
    roles: [read]
    approvers: [U0APPR]
    notify: [C0APPROVALS]
  - name: glass
    roles: [read]
    break_glass: true
    require_reason: true
"""})  # fmt: skip


class RecordingClient:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []

    def conversations_open(self, users: str) -> dict[str, Any]:
        return {'channel': {'id': 'D-' + users}}

    def chat_postMessage(self, **kwargs: Any) -> dict[str, Any]:
        self.posts.append(kwargs)
        return {'channel': kwargs['channel'], 'ts': str(len(self.posts))}

    def chat_update(self, **kwargs: Any) -> dict[str, Any]:
        return {}


class Store:
    def __init__(self, request: AccessRequest, event: str) -> None:
        self.request, self.event, self.copies = request, event, {}

    def audit_event(self, seq: int) -> dict[str, Any]:
        return {'seq': seq, 'event': self.event, 'actor': 'U0REQ', 'request': self.request.summary(),
                'rule': self.request.rule, 'reason': self.request.reason}  # fmt: skip

    def get(self, request_id: str) -> AccessRequest:
        return self.request

    def messages(self, request_id: str) -> dict[str, str]:
        return dict(self.copies)

    def add_message(self, request_id: str, key: str, ref: str) -> None:
        self.copies[key] = ref


def request(rule: str) -> AccessRequest:
    return AccessRequest(id='r-abcd2345', requester=Principal(slack_id='U0REQ'), resource='app', role='read',
                         duration=600, reason='see https://tracker.example/T-1', rule=rule, policy_version='v',
                         created_at=1.0)  # fmt: skip


def posts_of(rule: str, event: str) -> list[dict[str, Any]]:
    client = RecordingClient()
    notifier = SlackNotifier(client=client, store=Store(request(rule), event), policy=lambda: POLICY,  # type: ignore[arg-type]
                             audit_channel='C0AUDIT')  # fmt: skip
    notifier.handle(1)
    notifier.remind('r-abcd2345', 1)
    return client.posts


def test_every_post_asks_for_no_previews():
    posts = posts_of('by-dm', 'request.created') + posts_of('by-channel', 'request.created')
    posts += posts_of('glass', 'breakglass.used')
    channels = {p['channel'] for p in posts}
    # the audit channel, the requester's DM, an approver's DM, a notify channel, an admin's DM
    assert {'C0AUDIT', 'D-U0REQ', 'D-U0APPR', 'C0APPROVALS', 'D-U0ADMIN'} <= channels, channels
    assert any('Reminder' in p['text'] for p in posts), [p['text'] for p in posts]
    assert [p for p in posts if p.get('unfurl_links') is not False or p.get('unfurl_media') is not False] == []
