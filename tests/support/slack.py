"""The local Slack and the webhook target as the suites run them: each on a thread of its own, stopped after.

- :func:`local_slack` serves a :class:`~bot.sandbox.local_slack.LocalSlack` with the seeded workspace
  (``bot/sandbox/workspace.py``: alex, dana, sam, sec, ... and their DMs) on a free port.
- :func:`webhook_target` serves a :class:`~bot.sandbox.webhook_target.WebhookTarget`, the system the
  ``demo-app`` resource of ``tests/support/policies.py`` grants through; :func:`demo_webhook_env` is the
  environment that points jit's policy at it.
- ``SIGNING_SECRET`` and ``WEBHOOK_SECRET`` are the end-to-end and fuzz suites' (the chaos suite and the
  providers' end-to-end test use secrets of their own, written where they start their Slack).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bot.sandbox.local_slack import LocalSlack
from bot.sandbox.webhook_target import WebhookTarget
from bot.sandbox.workspace import seed_workspace

__all__ = ['SIGNING_SECRET', 'WEBHOOK_SECRET', 'demo_webhook_env', 'local_slack', 'webhook_target']

SIGNING_SECRET = 'e2e-signing-secret'
WEBHOOK_SECRET = 'e2e-webhook-secret'


@contextmanager
def local_slack(signing_secret: str, **options: Any) -> Iterator[LocalSlack]:
    """A seeded local Slack on its own thread; ``options`` go to ``LocalSlack`` (``transport``, ``app_token``)."""
    slack = LocalSlack(workspace=seed_workspace(), signing_secret=signing_secret, **options)
    slack.start_in_thread()
    try:
        yield slack
    finally:
        slack.stop_thread()


@contextmanager
def webhook_target(secret: str) -> Iterator[WebhookTarget]:
    """A webhook target on its own thread that accepts calls signed with ``secret``."""
    target = WebhookTarget(secret)
    target.start_in_thread()
    try:
        yield target
    finally:
        target.stop_thread()


def demo_webhook_env(target: WebhookTarget) -> dict[str, str]:
    """The settings ``demo-app`` reads (``env:DEMO_WEBHOOK_URL``, ``env:DEMO_WEBHOOK_SECRET``): ``target``'s."""
    return {'DEMO_WEBHOOK_URL': target.url, 'DEMO_WEBHOOK_SECRET': target.secret}
