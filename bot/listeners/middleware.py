"""Global Bolt middleware: the request's log context, and the identity helper in ``context``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from slack_bolt.context.async_context import AsyncBoltContext

from bot.core.model import Principal


async def bind_request_context(
    context: AsyncBoltContext, body: dict[str, Any], next: Callable[[], Awaitable[None]]
) -> None:
    """Bind team, user and trigger to every log line of this request; expose ``context['who']()``."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        slack_team=context.team_id, slack_user=context.user_id,
        trigger='command' if 'command' in body else body.get('type', 'event'),
    )  # fmt: skip
    deps = context['deps']
    home_team = context.authorize_result.team_id if context.authorize_result else None

    async def who() -> Principal:
        assert context.user_id is not None
        principal: Principal = await deps.directory.principal(context.user_id, context.client, team_id=home_team)
        return principal

    context['who'] = who
    await next()
