"""Global Bolt middleware: the request's log context, and the identity helper in ``context``.

Listeners read what the middleware put in Bolt's ``context`` (a dict of ``Any``) through :func:`deps_of` and
:func:`who_is`, so that everything they call on it is type-checked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog
from slack_bolt.context.async_context import AsyncBoltContext

from bot.core.model import Principal

if TYPE_CHECKING:
    from bot.deps import Deps


def deps_of(context: AsyncBoltContext) -> Deps:
    """The wired application (``bot.app`` puts it in every request's context)."""
    deps: Deps = context['deps']
    return deps


async def who_is(context: AsyncBoltContext) -> Principal:
    """Who is acting, as Slack's directory says (raises IdentityRefused, SlackUnavailable)."""
    principal: Principal = await context['who']()
    return principal


async def bind_request_context(
    context: AsyncBoltContext, body: dict[str, Any], next: Callable[[], Awaitable[None]]
) -> None:
    """Bind team, user and trigger to every log line of this request; expose ``context['who']()``.

    Only these three keys are bound (binding replaces any earlier value), and nothing is cleared. The
    transport started the request's log context and bound its ID there (``http_request_id``,
    :mod:`bot.access_log`; ``slack_envelope_id``, :mod:`bot.socket_mode`), and a clear would drop it. Nothing
    of an earlier request is left to clear: aiohttp and slack_sdk each run every request or envelope in a task
    of its own, with a copy of a context in which nothing is bound.
    """
    structlog.contextvars.bind_contextvars(
        slack_team=context.team_id, slack_user=context.user_id,
        trigger='command' if 'command' in body else body.get('type', 'event'),
    )  # fmt: skip
    deps = deps_of(context)
    home_team = context.authorize_result.team_id if context.authorize_result else None

    async def who() -> Principal:
        assert context.user_id is not None
        principal: Principal = await deps.directory.principal(context.user_id, context.client, team_id=home_team)
        return principal

    context['who'] = who
    await next()
