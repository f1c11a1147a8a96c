"""Errors at the Slack edge, mapped in one place.

Expected refusals (:class:`~bot.core.errors.JitError`) are answered where the user is looking:
in the command's ack, or ephemerally beside the button they pressed. Anything else is a bug: it
is logged with its traceback and the user gets a short apology, never the traceback.
"""

from __future__ import annotations

from typing import Any

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = structlog.get_logger(__name__)


async def tell(client: AsyncWebClient, body: dict[str, Any], text: str) -> None:
    """An ephemeral message to whoever clicked, in the conversation where they clicked."""
    user = (body.get('user') or {}).get('id')
    channel = (body.get('channel') or {}).get('id') or (body.get('container') or {}).get('channel_id')
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


async def handle_unexpected_error(error: Exception, body: dict[str, Any], logger: Any) -> None:
    """Bolt's global error handler: log the bug; Bolt answers Slack with an empty error response."""
    log.error('listener.unexpected_error', error_type=type(error).__name__, exc_info=error)
