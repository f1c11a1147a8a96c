"""Who a Slack user is: ``users.info`` behind a short cache, with the refusals identity needs.

The user ID of a verified request is the identity; the email from ``users.info`` links it to
policy groups. Deleted, bot and guest (restricted) users, and users of another workspace, are
refused here, for requesting and approving alike.
"""

from __future__ import annotations

import asyncio
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import IdentityRefused, SlackUnavailable
from bot.core.model import Principal

#: How long a listener waits for ``users.info`` before answering that Slack is slow: with the rest of the
#: work, the answer still reaches Slack within its 3 s.
LOOKUP_WAIT = 1.8
#: Long enough to spare Slack's rate limits on busy approval rounds, short enough that a
#: deactivated account stops working within minutes.
CACHE_SECONDS = 300.0


class SlackDirectory:
    """Resolves Slack user IDs to principals for one workspace (``team_id`` from ``auth.test``)."""

    def __init__(self, *, cache_seconds: float = CACHE_SECONDS, wait: float = LOOKUP_WAIT) -> None:
        self.cache_seconds, self.wait = cache_seconds, wait
        self._cache: dict[str, tuple[float, Principal | IdentityRefused]] = {}
        self._inflight: dict[str, asyncio.Task[Principal | IdentityRefused]] = {}

    async def principal(self, user_id: str, client: AsyncWebClient, *, team_id: str | None) -> Principal:
        """The principal for ``user_id``.

        Args:
            user_id: from the signed payload.
            client: the Bolt client (its token and base URL).
            team_id: the workspace jit is installed in; users of any other team are refused.

        Raises:
            IdentityRefused: deleted, bot, guest, unknown, or another workspace's user.
        """
        hit = self._cache.get(user_id)
        if hit is None or hit[0] < time.monotonic():
            found = await self._looked_up(user_id, client)
        else:
            found = hit[1]
        if isinstance(found, IdentityRefused):
            raise found
        if team_id and found.team_id and found.team_id != team_id:
            raise IdentityRefused('Users of another workspace may not use jit here.')
        return found

    async def _looked_up(self, user_id: str, client: AsyncWebClient) -> Principal | IdentityRefused:
        """One ``users.info`` per user at a time (fifty clicks at once ask once), awaited at most ``wait``.

        Slack must have its answer within 3 s: a lookup that takes longer (rate-limited, Slack slow) is not
        waited for. The caller is told, and does nothing; the lookup goes on, so the cache is warm when the
        user tries again.
        """
        task = self._inflight.get(user_id)
        if task is None:
            task = asyncio.ensure_future(self._lookup(user_id, client))
            self._inflight[user_id] = task
            task.add_done_callback(lambda done: self._settle(user_id, done))
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.wait)
        except TimeoutError:
            raise SlackUnavailable(
                'Slack is slow to tell me who you are right now, so nothing was done. Try again in a moment.'
            ) from None

    def _settle(self, user_id: str, task: asyncio.Task[Principal | IdentityRefused]) -> None:
        self._inflight.pop(user_id, None)
        if not task.cancelled() and task.exception() is None:
            self._cache[user_id] = (time.monotonic() + self.cache_seconds, task.result())

    async def _lookup(self, user_id: str, client: AsyncWebClient) -> Principal | IdentityRefused:
        try:
            user = (await client.users_info(user=user_id))['user']
        except SlackApiError as exc:
            if exc.response.get('error') == 'user_not_found':
                return IdentityRefused('Slack does not know your user.')
            raise
        if user.get('deleted'):
            return IdentityRefused('Deactivated accounts may not use jit.')
        if user.get('is_bot') or user.get('id') == 'USLACKBOT':
            return IdentityRefused('Bots may not request or approve access.')
        if user.get('is_restricted') or user.get('is_ultra_restricted'):
            return IdentityRefused('Guest accounts may not request or approve access.')
        profile = user.get('profile') or {}
        return Principal(slack_id=user['id'], email=(profile.get('email') or '').lower() or None,
                         team_id=user.get('team_id'), name=profile.get('display_name') or user.get('name'))  # fmt: skip
