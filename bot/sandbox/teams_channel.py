"""The sandbox's Teams channels: a stand-in for their Workflows webhooks, and the cards as the page shows them.

Part of `bot/sandbox/`. jit posts an Adaptive Card to a channel's webhook URL as
`{"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": CARD}]}`.
`jit sandbox` points each channel's webhook variable at `POST /sandbox/teams/{channel}?sig=KEY` on the page's own
server (`page.py` adds the route); `TeamsChannels` checks the key (as a Workflows URL carries a signature), keeps
every post, and answers 202 as Workflows does.

`card_items` reads a card the simple way the page shows it, as data the page renders with `textContent` only:
a TextBlock and a RichTextBlock's TextRuns are text (markdown is not rendered: shown as written), a FactSet is
rows, Action.OpenUrl a link (http and https URLs only), containers and columns are read through; anything else
is named in brackets, so nothing is silently left out.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

__all__ = ["TeamsChannels", "TeamsPost", "card_items"]

JSON = dict[str, Any]
#: The content type of an Adaptive Card attachment.
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
#: How many posts are kept, over all channels; older ones are dropped.
MAX_POSTS = 500
#: How deep `card_items` follows containers (a card nests a few levels; a hostile one could nest thousands).
MAX_DEPTH = 12
#: How many items and how much text one card shows at most.
MAX_ITEMS, MAX_TEXT = 200, 5000


@dataclass(frozen=True)
class TeamsPost:
    """One card post as it arrived."""

    time: float
    channel: str
    payload: JSON


class TeamsChannels:
    """The posts to the sandbox's Teams channels, in arrival order."""

    def __init__(self, key: str | None = None, *, limit: int = MAX_POSTS) -> None:
        """`key` is the `sig` every webhook URL carries (random when omitted)."""
        self.key = key or secrets.token_urlsafe(24)
        self.limit = limit
        self._lock = threading.Lock()
        self._posts: list[TeamsPost] = []
        self._declared: list[str] = []

    def webhook_url(self, base_url: str, channel: str) -> str:
        """The webhook URL of `channel` on the page's server at `base_url`; the page lists the channel from now on."""
        with self._lock:
            if channel not in self._declared:
                self._declared.append(channel)
        path = urllib.parse.quote(channel, safe="")
        return f"{base_url.rstrip('/')}/sandbox/teams/{path}?sig={urllib.parse.quote(self.key, safe='')}"

    def signed(self, sig: str | None) -> bool:
        """Whether a post carries this run's key."""
        return sig is not None and hmac.compare_digest(sig.encode(), self.key.encode())

    def record(self, channel: str, payload: JSON) -> TeamsPost:
        """Keep a post."""
        post = TeamsPost(time.time(), channel, payload)
        with self._lock:
            self._posts.append(post)
            del self._posts[: -self.limit]
        return post

    @property
    def posts(self) -> list[TeamsPost]:
        """Every post kept, oldest first (a copy)."""
        with self._lock:
            return list(self._posts)

    @property
    def channels(self) -> list[str]:
        """The channels with a webhook URL handed out, then any other that was posted to, in order."""
        with self._lock:
            names = list(self._declared)
            posted = [p.channel for p in self._posts]
        return names + [c for c in dict.fromkeys(posted) if c not in names]


def is_message(payload: Any) -> bool:
    """Whether a body is a webhook message: an object of type "message" with a list of attachments."""
    return (
        isinstance(payload, dict)
        and payload.get("type") == "message"
        and isinstance(payload.get("attachments"), list)
        and all(isinstance(a, dict) for a in payload["attachments"])
    )


# -- reading a card -----------------------------------------------------------------------------------


def _str(value: Any) -> str:
    return value[:MAX_TEXT] if isinstance(value, str) else ""


def _web_url(value: Any) -> str | None:
    """`value` when it is an absolute http(s) URL (never `javascript:` and the like), else None."""
    if not isinstance(value, str):
        return None
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:
        return None
    return value if parts.scheme in ("http", "https") and parts.netloc else None


def _runs(inlines: Any) -> list[JSON]:
    """A RichTextBlock's inlines as runs of text: a TextRun, or a bare string."""
    runs = []
    for inline in inlines if isinstance(inlines, list) else []:
        if isinstance(inline, str):
            runs.append({"text": _str(inline), "bold": False, "subtle": False})
        elif isinstance(inline, dict) and inline.get("type") == "TextRun":
            runs.append(
                {
                    "text": _str(inline.get("text")),
                    "bold": inline.get("weight") == "Bolder",
                    "subtle": bool(inline.get("isSubtle")),
                }
            )
    return runs


class _Reader:
    """Walks a card into items, bounded in depth and count."""

    def __init__(self) -> None:
        self.items: list[JSON] = []

    def add(self, item: JSON) -> None:
        if len(self.items) < MAX_ITEMS:
            self.items.append(item)

    def elements(self, elements: Any, depth: int) -> None:
        for element in elements if isinstance(elements, list) else []:
            if isinstance(element, dict):
                self.element(element, depth)

    def element(self, element: JSON, depth: int) -> None:
        if depth > MAX_DEPTH:
            self.add({"kind": "other", "type": "nested too deep"})
            return
        kind = element.get("type")
        if kind == "TextBlock":
            text = _str(element.get("text"))
            self.add({"kind": "text", "runs": [{"text": text, "bold": element.get("weight") == "Bolder",
                                                "subtle": bool(element.get("isSubtle"))}]})  # fmt: skip
        elif kind == "RichTextBlock":
            self.add({"kind": "text", "runs": _runs(element.get("inlines"))})
        elif kind == "FactSet":
            facts = [
                [_str(f.get("title")), _str(f.get("value"))] for f in element.get("facts") or [] if isinstance(f, dict)
            ]
            self.add({"kind": "facts", "facts": facts})
        elif kind in ("Container", "Column"):
            self.elements(element.get("items"), depth + 1)
        elif kind == "ColumnSet":
            for column in element.get("columns") or []:
                if isinstance(column, dict):
                    self.element({**column, "type": "Column"}, depth + 1)
        elif kind == "ActionSet":
            self.actions(element.get("actions"))
        else:
            self.add({"kind": "other", "type": _str(kind)[:60] or "?"})

    def actions(self, actions: Any) -> None:
        for action in actions if isinstance(actions, list) else []:
            if not isinstance(action, dict):
                continue
            url = _web_url(action.get("url")) if action.get("type") == "Action.OpenUrl" else None
            if url is not None:
                self.add({"kind": "link", "title": _str(action.get("title")) or url, "url": url})
            else:
                self.add(
                    {"kind": "other", "type": f"{_str(action.get('type'))[:60] or '?'}: {_str(action.get('title'))}"}
                )


def card_items(payload: JSON) -> list[JSON]:
    """What the page shows of a webhook message: its cards' items in order (see the module docstring)."""
    reader = _Reader()
    for attachment in payload.get("attachments") or []:
        if not isinstance(attachment, dict):
            continue
        content = attachment.get("content")
        if attachment.get("contentType") != CARD_TYPE or not isinstance(content, dict):
            reader.add({"kind": "other", "type": _str(attachment.get("contentType"))[:60] or "attachment"})
            continue
        reader.elements(content.get("body"), 0)
        reader.actions(content.get("actions"))
    return reader.items
