"""The local Slack speaks Socket Mode as slack_sdk's own client expects: tokens, hello, envelopes, acks."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.local_slack import LocalSlack


@pytest.fixture(name='slack')
async def _slack():
    slack = LocalSlack(transport='socket')
    await slack.start()
    yield slack
    await slack.stop()


async def test_only_the_app_token_opens_a_socket_and_it_opens_nothing_else(slack):
    client = AsyncWebClient(base_url=slack.api_url)
    opened = await client.apps_connections_open(app_token=slack.app_token)
    assert opened['url'].startswith('ws://127.0.0.1:') and 'ticket=' in opened['url']
    for token, error in [(slack.bot_token, 'not_allowed_token_type'), ('xapp-1-other', 'invalid_auth')]:
        with pytest.raises(SlackApiError) as refused:
            await client.apps_connections_open(app_token=token)
        assert refused.value.response['error'] == error
    with pytest.raises(SlackApiError) as refused:
        await AsyncWebClient(token=slack.app_token, base_url=slack.api_url).chat_postMessage(
            channel='C0AUDIT', text='x'
        )
    assert refused.value.response['error'] == 'not_allowed_token_type'


async def test_a_url_works_once(slack):
    url = (await AsyncWebClient(base_url=slack.api_url).apps_connections_open(app_token=slack.app_token))['url']
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            hello = await ws.receive_json(timeout=5)
            assert hello['type'] == 'hello' and hello['num_connections'] == 1
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url)
        assert refused.value.status == 401


async def test_sdk_client_receives_envelopes_and_its_acks_come_back(slack):
    client = SocketModeClient(app_token=slack.app_token, web_client=AsyncWebClient(base_url=slack.api_url))
    seen: list[SocketModeRequest] = []

    async def listener(sdk_client: SocketModeClient, request: SocketModeRequest) -> None:
        seen.append(request)
        payload = {'text': 'Filed'} if request.type == 'slash_commands' else None
        await sdk_client.send_socket_mode_response(SocketModeResponse(request.envelope_id, payload=payload))

    client.socket_mode_request_listeners.append(listener)
    await client.connect()
    try:
        assert await slack.socket_mode.wait_connected(5)
        reply = await slack.async_driver.slash('U0ALEX', 'request demo-app read 1h x')
        assert (reply.status, reply.text) == (200, 'Filed') and reply.acked_in_time
        assert seen[0].type == 'slash_commands' and seen[0].payload['user_id'] == 'U0ALEX'
        assert seen[0].accepts_response_payload is True
        assert slack.workspace.ephemerals('U0ALEX')[-1].text == 'Filed'  # the ack is shown, as over HTTP
        reply = await slack.async_driver.open_home('U0ALEX')
        assert reply.status == 200 and reply.body == ''
        assert seen[1].type == 'events_api' and seen[1].payload['event']['type'] == 'app_home_opened'
        assert seen[1].accepts_response_payload is False
    finally:
        await client.close()


async def test_no_ack_is_no_reply(slack):
    url = (await AsyncWebClient(base_url=slack.api_url).apps_connections_open(app_token=slack.app_token))['url']
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.receive_json(timeout=5)
        assert await slack.socket_mode.deliver('events_api', {'type': 'event_callback'}, timeout=0.5) is None
        envelope = await ws.receive_json(timeout=5)
        assert envelope['type'] == 'events_api' and envelope['envelope_id']
    await asyncio.sleep(0)  # the closed socket leaves the hub
    assert await slack.socket_mode.deliver('events_api', {}, timeout=0.2) is None


async def test_an_envelope_on_a_connection_the_app_closes_unacked_goes_again_on_one_still_open(slack):
    """An app that reconnects closes its old connection; an envelope on it that was not acked is sent again, as a
    retry with the same envelope_id, on a connection still open (else a slash command would be lost)."""
    client = AsyncWebClient(base_url=slack.api_url)
    first = (await client.apps_connections_open(app_token=slack.app_token))['url']
    second = (await client.apps_connections_open(app_token=slack.app_token))['url']
    async with aiohttp.ClientSession() as session, session.ws_connect(first) as old, session.ws_connect(second) as new:
        await old.receive_json(timeout=5)
        await new.receive_json(timeout=5)
        slack.socket_mode._next = -1  # the next envelope goes to the first connection (round robin)
        delivery = asyncio.create_task(slack.socket_mode.deliver('slash_commands', {'command': '/jit'}, timeout=5))
        sent = await old.receive_json(timeout=5)
        await old.close()  # reconnecting: gone without an ack
        again = await new.receive_json(timeout=5)
        assert again['envelope_id'] == sent['envelope_id'] and again['retry_attempt'] == 1
        await new.send_json({'envelope_id': again['envelope_id'], 'payload': {'text': 'Filed'}})
        ack = await delivery
    assert ack is not None and ack.payload == {'text': 'Filed'}
