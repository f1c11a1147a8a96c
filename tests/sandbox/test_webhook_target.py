"""The webhook target keeps the `webhook` provider contract and fails on demand."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from bot.sandbox.webhook_target import WebhookTarget
from tests.support.slack import webhook_target

SECRET = "webhook-secret"


def _body(action: str, request_id: str = "req-1") -> bytes:
    """A provider call as jit's webhook provider sends it."""
    return json.dumps(
        {
            "action": action,
            "request_id": request_id,
            "user": {"slack_id": "U0ALEX", "email": "alex@example.com"},
            "resource": "deploy-hook",
            "role": "deploy",
            "expires_at": "2030-01-01T00:00:00Z",
            "reason": "INC-4711",
        }
    ).encode()


def _post(url: str, body: bytes, signature: str | None) -> int:
    """Post a body with an optional `X-JIT-Signature` and return the HTTP status."""
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-JIT-Signature"] = signature
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture(name="target")
def _target() -> Iterator[WebhookTarget]:
    """A webhook target served on its own thread."""
    with webhook_target(SECRET) as target:
        yield target


def _send(target: WebhookTarget, action: str, request_id: str = "req-1") -> int:
    """Send a correctly signed call."""
    body = _body(action, request_id)
    return _post(target.url, body, target.sign(body))


def test_grant_then_revoke_is_tracked_and_idempotent(target: WebhookTarget) -> None:
    """A grant makes the request active, a revoke ends it; repeating either still answers 200."""
    assert _send(target, "grant") == 200
    assert _send(target, "grant") == 200
    assert target.active["req-1"]["role"] == "deploy"
    assert _send(target, "revoke") == 200
    assert _send(target, "revoke") == 200
    assert target.active == {}
    assert [c.ok for c in target.grants_for("req-1")] == [True, True]
    assert len(target.revokes_for("req-1")) == 2
    assert target.grants_for("req-2") == []


def test_bad_or_missing_signature_is_rejected(target: WebhookTarget) -> None:
    """A wrong or missing signature answers 401, is recorded as rejected and changes nothing."""
    body = _body("grant")
    assert _post(target.url, body, "sha256=" + "0" * 64) == 401
    assert _post(target.url, body, None) == 401
    assert _post(target.url, body, target.sign(body + b" ")) == 401
    assert target.active == {}
    assert len(target.rejected) == 3
    assert all(call.status == 401 and not call.ok for call in target.calls)


def test_malformed_body_is_a_400(target: WebhookTarget) -> None:
    """A signed body that is not the contract's JSON answers 400 and grants nothing."""
    body = b'{"action": "grant"}'
    assert _post(target.url, body, target.sign(body)) == 400
    assert target.active == {}


def test_fail_with_count_fails_that_many_calls(target: WebhookTarget) -> None:
    """`fail_with(503, count=2)` answers 503 twice, then the target works again."""
    target.fail_with(503, count=2)
    assert [_send(target, "grant") for _ in range(3)] == [503, 503, 200]
    assert [c.status for c in target.grants_for("req-1")] == [503, 503, 200]
    assert "req-1" in target.active


def test_fail_with_until_fails_until_then(target: WebhookTarget) -> None:
    """`fail_with(500, until=t)` fails every call before `t` and none after."""
    target.fail_with(500, until=time.time() + 0.3)
    assert _send(target, "grant") == 500
    time.sleep(0.35)
    assert _send(target, "grant") == 200


def test_delay_makes_the_target_slow_and_arrival_is_recorded(target: WebhookTarget) -> None:
    """With `delay(0.3)` answers take that long; the call's time is when it arrived, not when answered."""
    target.delay(0.3)
    started = time.time()
    assert _send(target, "grant") == 200
    assert time.time() - started >= 0.3
    assert target.calls[0].time - started < 0.2


async def test_async_start_serves_on_the_running_loop() -> None:
    """`await start()` serves on the test's loop; an aiohttp client's signed grant is applied."""
    target = WebhookTarget(SECRET)
    url = await target.start()
    try:
        body = _body("grant", "req-async")
        headers: dict[str, Any] = {"X-JIT-Signature": target.sign(body), "Content-Type": "application/json"}
        async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as response:
            assert response.status == 200
            assert await response.json() == {"ok": True, "active": True}
        assert list(target.active) == ["req-async"]
    finally:
        await target.stop()
