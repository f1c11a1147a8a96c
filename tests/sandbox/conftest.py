"""Fixtures for the local Slack's own tests.

- `threaded_slack`: a seeded `LocalSlack` served on a daemon thread, for blocking clients (`WebClient`).
- `slack`: a seeded `LocalSlack` served on the test's event loop, for `AsyncWebClient` and `AsyncDriver`.
- `bolt`: a tiny real Bolt `AsyncApp` (a `BoltProbe`) served on the test's loop and wired to `slack`: its
  listeners record what reached them, so tests can check that the driver's requests pass Bolt's checks.
- `threaded_bolt`: the same probe served on its own thread and wired to `threaded_slack`, for `Driver`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from bot.sandbox.local_slack import LocalSlack
from tests.support.slack import local_slack

from ._bolt_probe import SIGNING_SECRET, BoltProbe, build_probe


@pytest.fixture(name="threaded_slack")
def _threaded_slack() -> Iterator[LocalSlack]:
    """A seeded local Slack on its own thread."""
    with local_slack(SIGNING_SECRET) as slack:
        yield slack


@pytest.fixture(name="slack")
async def _slack() -> AsyncIterator[LocalSlack]:
    """A seeded local Slack on the test's loop."""
    slack = LocalSlack(signing_secret=SIGNING_SECRET)
    await slack.start()
    yield slack
    await slack.stop()


@pytest.fixture(name="bolt")
async def _bolt(slack: LocalSlack) -> AsyncIterator[BoltProbe]:
    """The probe app on the test's loop, set as the local Slack's `app_url`."""
    probe = build_probe(slack)
    slack.app_url = await probe.server.start() + "slack/events"
    yield probe
    await probe.server.stop()


@pytest.fixture(name="threaded_bolt")
def _threaded_bolt(threaded_slack: LocalSlack) -> Iterator[BoltProbe]:
    """The probe app on its own thread, set as the threaded local Slack's `app_url`."""
    probe = build_probe(threaded_slack)
    threaded_slack.app_url = probe.server.start_in_thread() + "slack/events"
    yield probe
    probe.server.stop_thread()
