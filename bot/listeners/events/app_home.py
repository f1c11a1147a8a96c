"""The App Home tab: published when the user opens it, and again after a button pressed in it."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.home import build_home
from bot.core.errors import JitError
from bot.listeners.errors import refusal_home
from bot.listeners.middleware import deps_of, who_is
from bot.usecases.queries import mine, waiting_for

log = structlog.get_logger(__name__)


async def handle_app_home_opened(event: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient) -> None:
    if event.get('tab', 'home') != 'home' or not isinstance(event.get('user'), str):
        return
    await publish_home(context, client, event['user'])


def from_home(body: dict[str, Any]) -> bool:
    """Whether a button was pressed in the Home tab (then the tab is published again afterwards)."""
    return (body.get('view') or {}).get('type') == 'home'


async def publish_home(context: AsyncBoltContext, client: AsyncWebClient, user_id: str) -> None:
    deps = deps_of(context)
    try:
        who = await who_is(context)
    except JitError as exc:
        view = refusal_home(exc)
    else:
        policy = deps.policy()
        requests = await asyncio.to_thread(mine, deps.store, who)
        waiting = await asyncio.to_thread(waiting_for, deps.store, policy, who)
        view = build_home(requests, waiting, policy, deps.clock.now())
    try:
        await client.views_publish(user_id=user_id, view=view)
    except SlackApiError as exc:
        log.warning('slack.home_publish_failed', error=exc.response.get('error'))
