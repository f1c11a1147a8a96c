"""The sandbox's approvals outside Slack: its SMTP server and Inbox, its Teams channels' webhook and cards.

The mail comes over a real SMTP session (the standard library's ``smtplib``, in clear, as jit's
``smtp+insecure://`` does), the cards over real HTTP to the local Slack's server; what the page would show is read
from ``/sandbox/state`` and ``/sandbox/mail/{id}``, as the page reads it.
"""

from __future__ import annotations

import json
import smtplib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox.local_slack import LocalSlack
from bot.sandbox.mailbox import Mailbox
from bot.sandbox.page import attach_mailbox, attach_teams
from bot.sandbox.run import _teams_webhook_vars
from bot.sandbox.teams_channel import MAX_DEPTH, TeamsChannels, card_items

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(name="mailbox")
def _mailbox() -> Iterator[Mailbox]:
    mailbox = Mailbox()
    mailbox.start()
    try:
        yield mailbox
    finally:
        mailbox.stop()


def _send(mailbox: Mailbox, to: str, subject: str, *, text: str = "hello", html: str | None = None) -> None:
    """Send one message to the mailbox over SMTP, no TLS, no login (what `smtp+insecure://` means)."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "jit sandbox <jit@sandbox.example>", to, subject
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    scheme, _, where = mailbox.url.partition("://")
    assert scheme == "smtp+insecure"
    host, _, port = where.rpartition(":")
    with smtplib.SMTP(host, int(port), timeout=10) as client:
        client.send_message(msg)


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def _post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_the_mailbox_keeps_what_smtp_delivered(mailbox: Mailbox) -> None:
    """A multipart message sent in clear is kept with its headers and both parts; each address sees its own."""
    assert mailbox.url.startswith("smtp+insecure://127.0.0.1:")
    _send(mailbox, "sec@example.com", "Approve r-1 — démo", text="Approve: https://jit/x", html="<p>Approve</p>")
    _send(mailbox, "sam@example.com", "for sam")
    [mail] = mailbox.to("SEC@example.com")
    assert (mail.sender, mail.to, mail.subject) == (
        "jit sandbox <jit@sandbox.example>",
        "sec@example.com",
        "Approve r-1 — démo",
    )
    assert mail.text is not None and mail.text.strip() == "Approve: https://jit/x"
    assert mail.html is not None and "<p>Approve</p>" in mail.html
    assert mail.rcpt_tos == ("sec@example.com",)
    assert [m.subject for m in mailbox.to("sam@example.com")] == ["for sam"]
    assert mailbox.to("eve@example.com") == []
    assert mailbox.get(mail.id) == mail and mailbox.get(999) is None


def test_the_mailbox_drops_the_oldest_past_its_limit() -> None:
    mailbox = Mailbox(limit=2)
    mailbox.start()
    try:
        for n in range(3):
            _send(mailbox, "sec@example.com", f"mail {n}")
        assert [m.subject for m in mailbox.mails] == ["mail 1", "mail 2"]
    finally:
        mailbox.stop()


@pytest.fixture(name="page")
def _page(threaded_slack: LocalSlack, mailbox: Mailbox) -> Iterator[tuple[LocalSlack, TeamsChannels]]:
    """The local Slack's page with the mailbox and a Teams channel attached, as `jit sandbox` wires them."""
    teams = TeamsChannels()
    attach_mailbox(threaded_slack, mailbox)
    attach_teams(threaded_slack, teams)
    yield threaded_slack, teams


def test_each_user_has_an_inbox_of_their_own(page: tuple[LocalSlack, TeamsChannels], mailbox: Mailbox) -> None:
    """The state lists the mail for the user's email only; the reading route gives both parts."""
    slack, _ = page
    _send(mailbox, "sec@example.com", "Approve r-1", text="plain", html="<p>rich</p>")
    status, state = _get(f"{slack.base_url}sandbox/state?user=U0SEC")
    assert status == 200 and state["inbox"]["address"] == "sec@example.com"
    [summary] = state["inbox"]["mails"]
    assert (summary["from"], summary["to"], summary["subject"]) == (
        "jit sandbox <jit@sandbox.example>",
        "sec@example.com",
        "Approve r-1",
    )
    assert _get(f"{slack.base_url}sandbox/state?user=U0SAM")[1]["inbox"]["mails"] == []
    status, full = _get(f"{slack.base_url}sandbox/mail/{summary['id']}")
    assert status == 200 and full["text"].strip() == "plain" and "<p>rich</p>" in full["html"]
    assert _get(f"{slack.base_url}sandbox/mail/999")[0] == 404
    assert _get(f"{slack.base_url}sandbox/mail/x")[0] == 404


CARD = {
    "type": "message",
    "attachments": [
        {
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "text": "**Access request**", "weight": "Bolder"},
                    {
                        "type": "RichTextBlock",
                        "inlines": [
                            {"type": "TextRun", "text": "<img src=x onerror=alert(1)>", "weight": "Bolder"},
                            {"type": "TextRun", "text": " asks", "isSubtle": True},
                        ],
                    },
                    {"type": "FactSet", "facts": [{"title": "Rule", "value": "demo-deploy"}]},
                    {
                        "type": "ColumnSet",
                        "columns": [{"items": [{"type": "TextBlock", "text": "in a column"}]}],
                    },
                    {"type": "Image", "url": "https://example.com/x.png"},
                ],
                "actions": [
                    {
                        "type": "Action.OpenUrl",
                        "title": "Approve",
                        "url": "http://127.0.0.1:1/decide/teams/t?do=approve",
                    },
                    {"type": "Action.OpenUrl", "title": "Evil", "url": "javascript:alert(1)"},
                    {"type": "Action.Submit", "title": "Send"},
                ],
            },
        }
    ],
}


def test_card_items_read_a_card_the_simple_way() -> None:
    """Text as written (markdown and markup not read), facts as rows, only http(s) actions as links."""
    assert card_items(CARD) == [
        {"kind": "text", "runs": [{"text": "**Access request**", "bold": True, "subtle": False}]},
        {
            "kind": "text",
            "runs": [
                {"text": "<img src=x onerror=alert(1)>", "bold": True, "subtle": False},
                {"text": " asks", "bold": False, "subtle": True},
            ],
        },
        {"kind": "facts", "facts": [["Rule", "demo-deploy"]]},
        {"kind": "text", "runs": [{"text": "in a column", "bold": False, "subtle": False}]},
        {"kind": "other", "type": "Image"},
        {"kind": "link", "title": "Approve", "url": "http://127.0.0.1:1/decide/teams/t?do=approve"},
        {"kind": "other", "type": "Action.OpenUrl: Evil"},
        {"kind": "other", "type": "Action.Submit: Send"},
    ]


def test_card_items_stop_at_a_depth() -> None:
    """A card nested thousands deep is read to `MAX_DEPTH` levels, not to Python's recursion limit."""
    element: dict[str, Any] = {"type": "TextBlock", "text": "deep"}
    for _ in range(5000):
        element = {"type": "Container", "items": [element]}
    payload = {"type": "message", "attachments": [{"contentType": CARD["attachments"][0]["contentType"],
                                                   "content": {"body": [element]}}]}  # fmt: skip
    assert card_items(payload) == [{"kind": "other", "type": "nested too deep"}]
    assert MAX_DEPTH < 100


def test_the_teams_webhook_keeps_signed_cards(page: tuple[LocalSlack, TeamsChannels]) -> None:
    """A post with the run's key is kept and shown (202); a wrong key, no key or no message is refused."""
    slack, teams = page
    url = teams.webhook_url(slack.base_url, "approvers")
    assert urllib.parse.urlsplit(url).path == "/sandbox/teams/approvers"
    _, before = _get(f"{slack.base_url}sandbox/state?user=U0EVE")
    assert before["teams"] == [{"name": "approvers", "cards": []}]  # declared: listed before any card

    assert _post(url, json.dumps(CARD).encode()) == 202
    assert _post(url.replace(teams.key, "x" * len(teams.key)), json.dumps(CARD).encode()) == 403
    assert _post(url.split("?")[0], json.dumps(CARD).encode()) == 403
    assert _post(url, b"not json") == 400
    assert _post(url, json.dumps({"type": "message"}).encode()) == 400
    assert len(teams.posts) == 1

    _, state = _get(f"{slack.base_url}sandbox/state?user=U0EVE")
    [channel] = state["teams"]
    assert channel["name"] == "approvers" and [c["items"] for c in channel["cards"]] == [card_items(CARD)]


def test_the_sandbox_finds_the_teams_webhooks_a_policy_names(tmp_path: Path) -> None:
    """The example policy's channel, and a channel in another file; files that do not read are passed over."""
    assert _teams_webhook_vars(str(ROOT / "policies")) == {"JIT_DEMO_TEAMS_WEBHOOK": "approvers"}
    (tmp_path / "a.yaml").write_text("teams:\n  sec: {webhook: env:SEC_HOOK}\n  bad: {webhook: https://x}\n")
    (tmp_path / "b.yml").write_text("teams: [not, a, mapping]\n")
    (tmp_path / "c.yaml").write_text("teams: {x: {webhook: env:X\n")
    (tmp_path / "d.yaml").write_bytes(b"\xff\xfe")
    assert _teams_webhook_vars(str(tmp_path)) == {"SEC_HOOK": "sec"}
    assert _teams_webhook_vars(str(tmp_path / "missing")) == {}
