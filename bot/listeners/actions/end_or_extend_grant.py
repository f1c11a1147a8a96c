"""The requester's own buttons: Extend (by the amount in the button) and Release now, in the "ends soon" DM
and the App Home; Cancel request, on the status message of a request still waiting for approval."""

from __future__ import annotations

import asyncio
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.answers import ended_answer, extend_answer
from bot.core.durations import seconds_value
from bot.core.errors import UsageError
from bot.listeners.errors import refusals_told
from bot.listeners.events.app_home import from_home, publish_home
from bot.listeners.middleware import deps_of, who_is
from bot.listeners.tell import tell


async def handle_extend_grant(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
) -> None:
    await ack()
    request_id, _, extra = str(action.get('value', '')).partition('|')
    async with refusals_told(client, body):
        who = await who_is(context)
        seconds = seconds_value(extra)
        if seconds is None:
            raise UsageError('This button is malformed; use `/jit extend ID DURATION`.')
        result = await asyncio.to_thread(deps_of(context).extend.execute, request_id, who, seconds)
        await tell(client, body, extend_answer(result))
    if from_home(body):
        await publish_home(context, client, body['user']['id'])


async def _end(step: str, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext,
               client: AsyncWebClient) -> None:  # fmt: skip
    """Release a grant or cancel a request (``deps.end.release|cancel``) for whoever pressed the button."""
    request_id = str(action.get('value', ''))
    async with refusals_told(client, body):
        who = await who_is(context)
        await asyncio.to_thread(getattr(deps_of(context).end, step), request_id, who)
        await tell(client, body, ended_answer(step, request_id))
    if from_home(body):
        await publish_home(context, client, body['user']['id'])


async def handle_release_grant(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
) -> None:
    await ack()
    await _end('release', body, action, context, client)


async def handle_cancel_request(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
) -> None:
    await ack()
    await _end('cancel', body, action, context, client)
