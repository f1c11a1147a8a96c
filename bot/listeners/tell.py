"""Telling one person something beside what they did: an ephemeral message where they acted, else a DM."""

from __future__ import annotations

from typing import Any

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = structlog.get_logger(__name__)


def _where(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """Who acted and in which conversation: interaction payloads nest them, slash commands do not."""
    user = (body.get('user') or {}).get('id') or body.get('user_id')
    channel = ((body.get('channel') or {}).get('id') or (body.get('container') or {}).get('channel_id')
               or body.get('channel_id'))  # fmt: skip
    return (user if isinstance(user, str) else None), (channel if isinstance(channel, str) else None)


async def tell(client: AsyncWebClient, body: dict[str, Any], text: str) -> None:
    """An ephemeral message to whoever acted, in the conversation where they did (else in a DM)."""
    user, channel = _where(body)
    if not user:
        return
    if channel:
        try:
            await client.chat_postEphemeral(channel=channel, user=user, text=text)
            return
        except SlackApiError as exc:
            # e.g. user_not_in_channel: the click came from a conversation they are not in. Say it in a DM.
            log.info('slack.ephemeral_failed', error=exc.response.get('error'))
    try:
        dm = await client.conversations_open(users=user)
        await client.chat_postMessage(channel=dm['channel']['id'], text=text)
    except SlackApiError as exc:
        log.warning('slack.tell_failed', error=exc.response.get('error'))
