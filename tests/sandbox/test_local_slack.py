"""The local Slack speaks Slack's protocol: real slack_sdk clients and a real Bolt app accept it."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.sandbox import _payloads, page
from bot.sandbox.local_slack import LocalSlack
from bot.sandbox.workspace import Message, User, seed_workspace

from ._bolt_probe import BoltProbe

APPROVAL_BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "<@U0ALEX> asks for prod-db read"}},
    {
        "type": "actions",
        "block_id": "decision",
        "elements": [
            {"type": "button", "action_id": "approve", "value": "req-1", "text": {"type": "plain_text", "text": "Ok"}},
            {"type": "button", "action_id": "deny", "value": "req-1", "text": {"type": "plain_text", "text": "No"}},
        ],
    },
]


def _post_approval(slack: LocalSlack, channel: str = "U0SAM") -> Any:
    """Post the approval message as the bot would, through the real sync client."""
    client = WebClient(token=slack.bot_token, base_url=slack.api_url)
    return client.chat_postMessage(channel=channel, text="approval", blocks=APPROVAL_BLOCKS)


# -- Web API through slack_sdk.WebClient ---------------------------------------------------------------


def test_seed_workspace_has_the_demo_users_and_edge_cases() -> None:
    """The seed gives the roles the demo needs and one user of each kind jit must refuse."""
    workspace = seed_workspace()

    def user(user_id: str) -> User:
        found = workspace.user(user_id)
        assert found is not None, user_id
        return found

    assert [user(u).email for u in ("U0ALEX", "U0DANA", "U0SAM", "U0SEC", "U0EVE")] == [
        "alex@example.com",
        "dana@example.com",
        "sam@example.com",
        "sec@example.com",
        "eve@example.com",
    ]
    assert [user("U0GONE").deleted, user("U0BOT").is_bot, user("U0GUEST").is_restricted] == [True, True, True]
    assert user("U0OTHER").team_id == "T0OTHER"
    assert user("U0JITBOT").is_bot
    assert workspace.resolve_channel("#jit-audit").id == "C0AUDIT"
    assert workspace.resolve_channel("prod-access").id == "C0ACCESS"


def test_auth_test_names_the_bot(threaded_slack: LocalSlack) -> None:
    """`auth.test` answers the fields Bolt reads once at start-up (team, bot user, bot id)."""
    answer = WebClient(token="xoxb-local", base_url=threaded_slack.api_url).auth_test()
    assert answer["team_id"] == "T0JIT"
    assert answer["user_id"] == "U0JITBOT"
    assert answer["bot_id"] == "B0JIT"
    assert answer["url"] == "https://jit-sandbox.slack.com/"


def test_post_message_to_a_user_id_opens_the_dm(threaded_slack: LocalSlack) -> None:
    """Posting to a user id lands in that user's DM, answered with Slack's `message` shape."""
    answer = _post_approval(threaded_slack, channel="U0SAM")
    assert answer["channel"] == threaded_slack.workspace.dm_channel_id("U0SAM")
    assert answer["channel"].startswith("D")
    assert answer["message"]["subtype"] == "bot_message"
    assert answer["message"]["bot_id"] == "B0JIT"
    dms = threaded_slack.workspace.dms_to("U0SAM")
    assert [m.ts for m in dms] == [answer["ts"]]
    assert dms[0].action_ids == ["approve", "deny"]
    assert "asks for prod-db read" in dms[0].content


def test_post_message_timestamps_strictly_increase(threaded_slack: LocalSlack) -> None:
    """Message timestamps are Slack-shaped and strictly increasing, even when posted in a burst."""
    client = WebClient(token="xoxb-local", base_url=threaded_slack.api_url)
    stamps = [client.chat_postMessage(channel="C0AUDIT", text=f"event {i}")["ts"] for i in range(5)]
    assert stamps == sorted(stamps, key=float)
    assert len(set(stamps)) == 5
    assert all(len(ts.split(".")[1]) == 6 for ts in stamps)
    assert [m.text for m in threaded_slack.workspace.messages("C0AUDIT")] == [f"event {i}" for i in range(5)]


def test_post_message_to_unknown_channel_is_channel_not_found(threaded_slack: LocalSlack) -> None:
    """An unknown channel gives Slack's error, which slack_sdk raises as `SlackApiError`."""
    client = WebClient(token="xoxb-local", base_url=threaded_slack.api_url)
    with pytest.raises(SlackApiError) as caught:
        client.chat_postMessage(channel="C0NOPE", text="hi")
    assert caught.value.response["error"] == "channel_not_found"


def test_update_replaces_text_and_keeps_blocks_left_out(threaded_slack: LocalSlack) -> None:
    """`chat.update` without `blocks` keeps them; with `blocks=[]` removes them (so buttons can go)."""
    posted = _post_approval(threaded_slack)
    client = WebClient(token="xoxb-local", base_url=threaded_slack.api_url)
    answer = client.chat_update(channel=posted["channel"], ts=posted["ts"], text="decided")
    assert answer["text"] == "decided"
    kept = threaded_slack.workspace.message(posted["channel"], posted["ts"])
    assert kept is not None and kept.action_ids == ["approve", "deny"]
    client.chat_update(channel=posted["channel"], ts=posted["ts"], text="Approved by sam", blocks=[])
    updated = threaded_slack.workspace.message(posted["channel"], posted["ts"])
    assert updated is not None and updated.action_ids == [] and updated.edits == 2
    with pytest.raises(SlackApiError) as caught:
        client.chat_update(channel=posted["channel"], ts="1.000001", text="x")
    assert caught.value.response["error"] == "message_not_found"


def test_post_ephemeral_answers_message_ts_and_is_seen_by_one_user(threaded_slack: LocalSlack) -> None:
    """`chat.postEphemeral` answers `message_ts`; the message is the user's alone, not the channel's."""
    client = WebClient(token="xoxb-local", base_url=threaded_slack.api_url)
    answer = client.chat_postEphemeral(channel="C0ACCESS", user="U0ALEX", text="unknown resource")
    assert "ts" not in answer.data
    assert [m.ts for m in threaded_slack.workspace.ephemerals("U0ALEX")] == [answer["message_ts"]]
    assert threaded_slack.workspace.messages("C0ACCESS") == []
    assert threaded_slack.workspace.ephemerals("U0EVE") == []


@pytest.mark.parametrize(
    ("user_id", "field", "expected"),
    [
        ("U0ALEX", "team_id", "T0JIT"),
        ("U0GONE", "deleted", True),
        ("U0BOT", "is_bot", True),
        ("U0GUEST", "is_restricted", True),
        ("U0OTHER", "team_id", "T0OTHER"),
    ],
)
def test_users_info_reports_identity_flags(threaded_slack: LocalSlack, user_id: str, field: str, expected: Any) -> None:
    """`users.info` carries the fields jit uses to refuse deleted, bot, guest and foreign users."""
    user = WebClient(token="xoxb-local", base_url=threaded_slack.api_url).users_info(user=user_id)["user"]
    assert user[field] == expected
    assert user["id"] == user_id


def test_users_info_profile_email_and_lookup_errors(threaded_slack: LocalSlack) -> None:
    """The email lives in `profile`; unknown users give `user_not_found` / `users_not_found`."""
    client = WebClient(token="xoxb-local", base_url=threaded_slack.api_url)
    assert client.users_info(user="U0SEC")["user"]["profile"]["email"] == "sec@example.com"
    assert client.users_lookupByEmail(email="sam@example.com")["user"]["id"] == "U0SAM"
    with pytest.raises(SlackApiError, match="user_not_found"):
        client.users_info(user="U0NOBODY")
    with pytest.raises(SlackApiError, match="users_not_found"):
        client.users_lookupByEmail(email="nobody@example.com")


def test_wrong_or_missing_token_is_refused(threaded_slack: LocalSlack) -> None:
    """A wrong bearer token is `invalid_auth`, none at all `not_authed`; nothing is posted."""
    with pytest.raises(SlackApiError) as wrong:
        WebClient(token="xoxb-wrong", base_url=threaded_slack.api_url).chat_postMessage(channel="C0AUDIT", text="x")
    assert wrong.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as missing:
        WebClient(base_url=threaded_slack.api_url).auth_test()
    assert missing.value.response["error"] == "not_authed"
    assert threaded_slack.workspace.messages("C0AUDIT") == []


def test_unknown_method_is_unknown_method(threaded_slack: LocalSlack) -> None:
    """A method the local Slack does not serve answers `unknown_method`, with HTTP 200 like Slack."""
    with pytest.raises(SlackApiError) as caught:
        WebClient(token="xoxb-local", base_url=threaded_slack.api_url).api_call("reactions.add")
    assert caught.value.response.status_code == 200
    assert caught.value.response["error"] == "unknown_method"


def test_rate_limit_is_retried_by_the_retry_handler(threaded_slack: LocalSlack) -> None:
    """An injected 429 is retried by `RateLimitErrorRetryHandler` after `Retry-After`, then succeeds."""
    client = WebClient(token="xoxb-local", base_url=threaded_slack.api_url)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    threaded_slack.rate_limit_next(1, retry_after=0)
    assert client.chat_postMessage(channel="C0AUDIT", text="after a 429")["ok"]
    statuses = [(c.status, c.error) for c in threaded_slack.calls_to("chat.postMessage")]
    assert statuses == [(429, "ratelimited"), (200, None)]


def test_rate_limit_of_one_method_leaves_the_others_alone(threaded_slack: LocalSlack) -> None:
    """`rate_limit_next(n, method=...)`: only that method's next `n` calls are answered 429."""
    client = WebClient(token="xoxb-local", base_url=threaded_slack.api_url)
    threaded_slack.rate_limit_next(1, retry_after=3, method="users.info")
    assert client.auth_test()["ok"]
    with pytest.raises(SlackApiError) as caught:
        client.users_info(user="U0ALEX")
    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "3"
    assert client.users_info(user="U0ALEX")["ok"]
    statuses = [(c.method, c.status) for c in threaded_slack.calls]
    assert statuses == [("auth.test", 200), ("users.info", 429), ("users.info", 200)]


def test_rate_limit_without_retry_handler_raises(threaded_slack: LocalSlack) -> None:
    """Without a retry handler slack_sdk raises on the 429, with the `Retry-After` header visible."""
    threaded_slack.rate_limit_next(1, retry_after=7)
    with pytest.raises(SlackApiError) as caught:
        WebClient(token="xoxb-local", base_url=threaded_slack.api_url).auth_test()
    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "7"
    assert caught.value.response["error"] == "ratelimited"


# -- Web API through AsyncWebClient ------------------------------------------------------------------


async def test_async_client_get_and_query_string_parameters(slack: LocalSlack) -> None:
    """AsyncWebClient sends `users.info` as GET and `conversations.open` in the query string; both work."""
    client = AsyncWebClient(token="xoxb-local", base_url=slack.api_url)
    assert (await client.users_info(user="U0DANA"))["user"]["name"] == "dana"
    opened = await client.conversations_open(users="U0DANA")
    again = await client.conversations_open(users="U0DANA")
    assert opened["channel"]["id"] == again["channel"]["id"] == "D0DANA"
    assert again["already_open"] is True
    assert [c.http_method for c in slack.calls_to("users.info")] == ["GET"]


async def test_views_open_needs_a_fresh_unused_trigger(slack: LocalSlack) -> None:
    """A trigger id opens one modal; reused, expired or made-up ones give Slack's trigger errors."""
    client = AsyncWebClient(token="xoxb-local", base_url=slack.api_url)
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Hi"}, "blocks": [], "callback_id": "cb"}
    trigger = slack.mint_trigger("U0ALEX")
    opened = await client.views_open(trigger_id=trigger, view=view)
    assert opened["view"]["id"].startswith("V")
    assert opened["view"]["state"] == {"values": {}}
    assert [v.callback_id for v in slack.workspace.views_for("U0ALEX")] == ["cb"]
    for trigger_id, error in [
        (trigger, "exchanged_trigger_id"),
        (slack.mint_trigger("U0ALEX", ttl=0), "expired_trigger_id"),
        ("123.456.nope", "invalid_trigger_id"),
    ]:
        # A form-encoded call carries the view as a JSON string; the local Slack takes both forms.
        with pytest.raises(SlackApiError) as caught:
            await client.api_call("views.open", params={"trigger_id": trigger_id, "view": json.dumps(view)})
        assert caught.value.response["error"] == error


async def test_views_update_refuses_a_stale_hash(slack: LocalSlack) -> None:
    """`views.update` with an old `hash` is `hash_conflict`, with the current one it replaces the view."""
    client = AsyncWebClient(token="xoxb-local", base_url=slack.api_url)
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Hi"}, "blocks": []}
    opened = (await client.views_open(trigger_id=slack.mint_trigger("U0SAM"), view=view))["view"]
    changed = {**view, "private_metadata": "v2"}
    updated = await client.views_update(view_id=opened["id"], hash=opened["hash"], view=changed)
    assert updated["view"]["private_metadata"] == "v2"
    with pytest.raises(SlackApiError, match="hash_conflict"):
        await client.views_update(view_id=opened["id"], hash=opened["hash"], view=view)


def _select_view(**select: Any) -> dict[str, Any]:
    element = {"type": "static_select", "action_id": "pick", **select}
    block = {"type": "input", "block_id": "pick", "label": {"type": "plain_text", "text": "Pick"}, "element": element}
    return {"type": "modal", "title": {"type": "plain_text", "text": "Hi"}, "blocks": [block]}


def _options(count: int, prefix: str = "o") -> list[dict[str, Any]]:
    return [{"text": {"type": "plain_text", "text": f"{prefix}{i}"}, "value": f"{prefix}{i}"} for i in range(count)]


def _groups(sizes: list[int]) -> list[dict[str, Any]]:
    return [
        {"label": {"type": "plain_text", "text": f"g{g}"}, "options": _options(n, f"g{g}-")}
        for g, n in enumerate(sizes)
    ]


async def test_views_refuse_selects_past_slacks_option_limits(slack: LocalSlack) -> None:
    """100 options, or 100 groups of 100, are accepted; one more anywhere is `invalid_arguments`, as Slack does:
    it refuses, it never cuts. A choice from a group is submitted like any other option."""
    client = AsyncWebClient(token="xoxb-local", base_url=slack.api_url)
    for accepted in [_select_view(options=_options(100)), _select_view(option_groups=_groups([100] * 100))]:
        await client.views_open(trigger_id=slack.mint_trigger("U0ALEX"), view=accepted)
    for refused in [
        _select_view(options=_options(101)),
        _select_view(option_groups=_groups([1] * 101)),
        _select_view(option_groups=_groups([100, 101])),
        _select_view(options=_options(1), option_groups=_groups([1])),
        _select_view(options=[{"text": {"type": "plain_text", "text": "x" * 76}, "value": "x"}]),
    ]:
        with pytest.raises(SlackApiError) as caught:
            await client.views_open(trigger_id=slack.mint_trigger("U0ALEX"), view=refused)
        assert caught.value.response["error"] == "invalid_arguments"
    grouped = slack.workspace.views_for("U0ALEX")[-1]
    values = _payloads.form_values(grouped, {"pick": "g99-99"})
    assert values["pick"]["pick"]["selected_option"]["value"] == "g99-99"
    [shown] = [v for v in page.user_state(slack, "U0ALEX")["views"] if v["id"] == grouped.id]
    options = shown["inputs"][0]["options"]
    assert len(options) == 10_000 and options[-1] == {"value": "g99-99", "text": "g99-99", "group": "g99"}


# -- the driver against a real Bolt app --------------------------------------------------------------


async def test_slash_command_reaches_bolt_and_its_ack_is_shown(slack: LocalSlack, bolt: BoltProbe) -> None:
    """A driven slash command passes Bolt's signature check; the ack text is shown to the user ephemerally."""
    reply = await slack.async_driver.slash("U0ALEX", "status", channel_id="C0ACCESS")
    assert reply.status == 200
    assert reply.text == "hello <@U0ALEX>"
    assert reply.acked_in_time
    body = bolt.seen["command"][0]
    assert (body["user_id"], body["team_id"], body["channel_name"]) == ("U0ALEX", "T0JIT", "prod-access")
    # The listener's later `respond()` races the ack's HTTP answer, on Slack as here: compare as sets.
    await slack.workspace.wait_for_async(lambda: len(slack.workspace.ephemerals("U0ALEX")) == 2)
    texts = {m.text for m in slack.workspace.ephemerals("U0ALEX")}
    assert texts == {"hello <@U0ALEX>", "a later answer through the response_url"}


async def test_in_channel_ack_is_posted_to_the_channel(slack: LocalSlack, bolt: BoltProbe) -> None:
    """An ack with `response_type: in_channel` becomes a message everybody in the channel sees."""
    reply = await slack.async_driver.slash("U0SAM", "shout", channel_id="C0ACCESS")
    assert reply.json == {"text": "everyone sees this", "response_type": "in_channel"}
    assert [m.text for m in slack.workspace.messages("C0ACCESS")] == ["everyone sees this"]


async def test_modal_opened_from_a_slash_command_and_submitted(slack: LocalSlack, bolt: BoltProbe) -> None:
    """The driver's trigger id opens a modal; field errors keep it open, a clean submit closes it."""
    await slack.async_driver.slash("U0ALEX", "modal")
    views = await slack.workspace.wait_for_async(lambda: slack.workspace.views_for("U0ALEX"))
    refused = await slack.async_driver.submit_view("U0ALEX", views[0], {"resource": "prod-db"})
    assert refused.response_action == "errors"
    assert refused.errors == {"reason": "Say why you need it"}
    assert not slack.workspace.views_for("U0ALEX")[0].closed
    accepted = await slack.async_driver.submit_view("U0ALEX", views[0], {"resource": "prod-db", "reason": "INC-1"})
    assert (accepted.status, accepted.body) == (200, "")
    assert slack.workspace.views_for("U0ALEX")[0].closed
    submitted = bolt.seen["submit"][-1]
    assert submitted["user"]["id"] == "U0ALEX"
    assert submitted["view"]["private_metadata"] == "from-probe"
    values = submitted["view"]["state"]["values"]
    assert values["resource"]["pick"]["selected_option"]["value"] == "prod-db"
    assert values["reason"]["text"] == {"type": "plain_text_input", "value": "INC-1"}


async def test_click_reaches_bolt_and_a_replaced_message_loses_its_buttons(slack: LocalSlack, bolt: BoltProbe) -> None:
    """A click carries the clicker's id; after `respond(replace_original=True)` the button is gone."""
    client = AsyncWebClient(token="xoxb-local", base_url=slack.api_url)
    posted = await client.chat_postMessage(channel="C0ACCESS", text="approval", blocks=APPROVAL_BLOCKS)
    message = slack.workspace.message(posted["channel"], posted["ts"])
    assert message is not None
    reply = await slack.async_driver.click("U0SAM", message, "approve")
    assert reply.status == 200
    clicked = bolt.seen["approve"][0]
    assert clicked["user"]["id"] == "U0SAM"
    assert clicked["actions"][0]["value"] == "req-1"
    assert clicked["container"] == {
        "type": "message",
        "message_ts": posted["ts"],
        "channel_id": "C0ACCESS",
        "is_ephemeral": False,
    }

    def replaced() -> Message | None:
        current = slack.workspace.message(posted["channel"], posted["ts"])
        return current if current is not None and current.edits else None

    assert (await slack.workspace.wait_for_async(replaced)).text == "Approved by <@U0SAM>"
    with pytest.raises(LookupError, match="no button approve"):
        await slack.async_driver.click("U0SEC", message, "approve")


async def test_click_refuses_a_message_the_user_cannot_see(slack: LocalSlack, bolt: BoltProbe) -> None:
    """Nobody but sam can press a button in sam's DM, as in Slack; `strict=False` forges it anyway."""
    client = AsyncWebClient(token="xoxb-local", base_url=slack.api_url)
    posted = await client.chat_postMessage(channel="U0SAM", text="approval", blocks=APPROVAL_BLOCKS)
    message = slack.workspace.message(posted["channel"], posted["ts"])
    assert message is not None
    with pytest.raises(LookupError, match="cannot see"):
        await slack.async_driver.click("U0EVE", message, "approve")
    forged = await slack.async_driver.click("U0EVE", message, "approve", strict=False)
    assert forged.status == 200
    assert bolt.seen["approve"][0]["user"]["id"] == "U0EVE"


async def test_home_tab_publish_and_click(slack: LocalSlack, bolt: BoltProbe) -> None:
    """`app_home_opened` reaches Bolt, the published Home is stored, and its buttons can be pressed."""
    assert (await slack.async_driver.open_home("U0DANA")).status == 200
    home = await slack.workspace.wait_for_async(lambda: slack.workspace.home_for("U0DANA"))
    assert home.action_ids == ["release"]
    await slack.async_driver.click_home("U0DANA", "release")
    pressed = bolt.seen["release"][0]
    assert pressed["user"]["id"] == "U0DANA"
    assert pressed["container"] == {"type": "view", "view_id": home.id}


async def test_forged_and_stale_signatures_get_401(slack: LocalSlack, bolt: BoltProbe) -> None:
    """Bolt refuses a wrong signature and a correctly signed but 6-minute-old request with 401."""
    body = "command=%2Fjit&text=status&user_id=U0EVE&team_id=T0JIT"
    forged = {"Content-Type": "application/x-www-form-urlencoded", **slack.async_driver.sign(body)}
    forged["X-Slack-Signature"] = "v0=" + "0" * 64
    assert (await slack.async_driver.post_raw(body, forged)).status == 401
    stale = {"Content-Type": "application/x-www-form-urlencoded"}
    stale.update(slack.async_driver.sign(body, timestamp=int(time.time()) - 360))
    reply = await slack.async_driver.post_raw(body, stale)
    assert (reply.status, reply.json) == (401, {"error": "invalid request"})
    assert "command" not in bolt.seen


async def test_response_url_takes_five_posts(slack: LocalSlack) -> None:
    """A `response_url` accepts five posts and answers 404 after, as Slack does."""
    url = slack.mint_response_url(user_id="U0ALEX", channel_id=slack.workspace.dm_channel_id("U0ALEX"))
    webhook = AsyncWebhookClient(url)
    statuses = [(await webhook.send(text=f"answer {i}")).status_code for i in range(6)]
    assert statuses == [200, 200, 200, 200, 200, 404]
    assert len(slack.workspace.ephemerals("U0ALEX")) == 5


async def test_response_url_replaces_or_deletes_the_clicked_message(slack: LocalSlack) -> None:
    """A click's `response_url` replaces the whole message (blocks included) or deletes it."""
    client = AsyncWebClient(token="xoxb-local", base_url=slack.api_url)
    posted = await client.chat_postMessage(channel="C0ACCESS", text="approval", blocks=APPROVAL_BLOCKS)
    url = slack.mint_response_url(user_id="U0SAM", channel_id="C0ACCESS", original_ts=posted["ts"])
    webhook = AsyncWebhookClient(url)
    await webhook.send(text="Denied by <@U0SAM>", replace_original=True)
    replaced = slack.workspace.message("C0ACCESS", posted["ts"])
    assert replaced is not None and (replaced.text, replaced.blocks) == ("Denied by <@U0SAM>", [])
    assert (await webhook.send(text="", delete_original=True)).status_code == 200
    assert slack.workspace.messages("C0ACCESS") == []
    assert [post.status for post in slack.responses] == [200, 200]


def test_sync_driver_drives_a_bolt_app_in_a_thread(threaded_slack: LocalSlack, threaded_bolt: BoltProbe) -> None:
    """The blocking `Driver` works from a plain test against a bot served on another thread."""
    reply = threaded_slack.driver.slash("U0DANA", "status")
    assert (reply.status, reply.text) == (200, "hello <@U0DANA>")
    assert threaded_bolt.seen["command"][0]["channel_id"] == "D0DANA"
    posted = _post_approval(threaded_slack, channel="U0SAM")
    message = threaded_slack.workspace.message(posted["channel"], posted["ts"])
    assert message is not None
    assert threaded_slack.driver.click("U0SAM", message, "approve").status == 200
    replaced = threaded_slack.workspace.wait_for(
        lambda: threaded_slack.workspace.find_message(lambda m: m.text.startswith("Approved by"))
    )
    assert replaced.ts == posted["ts"] and replaced.action_ids == []
