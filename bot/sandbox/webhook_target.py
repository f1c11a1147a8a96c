"""A real HTTP receiver for jit's `webhook` provider, for end-to-end tests and `jit sandbox`.

Part of `bot/sandbox/`; aiohttp only. It keeps the provider contract of `docs/product.md` section 3: a
`POST` of `{"action": "grant"|"revoke", "request_id", "user": {"slack_id", "email"}, "resource", "role",
"expires_at", "reason"}` signed with `X-JIT-Signature: sha256=HEX` (HMAC-SHA256 of the raw body). It checks
the signature, records every call with its arrival time, keeps the set of active grants (grant and revoke
are idempotent), and can be told to fail or to be slow so that retries and revoke deadlines can be tested.

Synchronous test::

    target = WebhookTarget("s3cret")
    url = target.start_in_thread()
    ...  # run the grant
    assert target.active["req-1"]["role"] == "deploy"
    target.stop_thread()
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.sandbox._server import AppServer

__all__ = ["WebhookCall", "WebhookTarget"]

JSON = dict[str, Any]
_FIELDS = ("action", "request_id", "user", "resource", "role", "expires_at", "reason")


@dataclass(frozen=True)
class WebhookCall:
    """One request as it arrived, and how the target answered it."""

    time: float
    body: JSON | None
    raw: bytes
    signature: str | None
    status: int
    rejected: bool

    @property
    def ok(self) -> bool:
        """Whether the target accepted and applied the call (a 2xx answer)."""
        return 200 <= self.status < 300

    @property
    def action(self) -> str | None:
        """`grant` or `revoke`, when the body parsed."""
        return None if self.body is None else self.body.get("action")

    @property
    def request_id(self) -> str | None:
        """The jit request id the call is about, when the body parsed."""
        return None if self.body is None else self.body.get("request_id")


class WebhookTarget:
    """An HTTP endpoint that plays the system jit grants access to through the `webhook` provider."""

    def __init__(self, secret: str, *, path: str = "/jit") -> None:
        """Create a target that accepts calls signed with `secret` at `path`.

        Args:
            secret: The shared secret (the policy's `settings.secret`).
            path: The URL path the provider posts to.
        """
        self.secret = secret
        self.path = path
        self._lock = threading.Lock()
        self._calls: list[WebhookCall] = []
        self._active: dict[str, JSON] = {}
        self._fail_status: int | None = None
        self._fail_count: int | None = None
        self._fail_until: float | None = None
        self._delay = 0.0
        #: Returned with every grant as ``details`` (a target that hands out a credential), when set.
        self.details: JSON | None = None
        self._server = AppServer(self._make_app, name="webhook-target")

    # -- serving -------------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on the running loop; return the URL to put in the policy's `settings.url`."""
        return await self._server.start(host, port) + self.path.lstrip("/")

    async def stop(self) -> None:
        """Stop serving (started with `start`)."""
        await self._server.stop()

    def start_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on a daemon thread with its own loop (synchronous tests); return the URL."""
        return self._server.start_in_thread(host, port) + self.path.lstrip("/")

    def stop_thread(self) -> None:
        """Stop the server started with `start_in_thread`."""
        self._server.stop_thread()

    @property
    def url(self) -> str:
        """The URL the provider should post to."""
        if self._server.base_url is None:
            raise RuntimeError("WebhookTarget is not started")
        return self._server.base_url + self.path.lstrip("/")

    # -- behaviour control ---------------------------------------------------------------------------

    def fail_with(self, status: int | None, count: int | None = None, until: float | None = None) -> None:
        """Answer `status` instead of applying calls: for the next `count` calls, until `until` (a
        `time.time()` value), or, with neither, until told otherwise. `fail_with(None)` recovers.
        """
        with self._lock:
            self._fail_status, self._fail_count, self._fail_until = status, count, until

    def delay(self, seconds: float) -> None:
        """Wait this long before handling each call, to play a slow target (0 turns it off)."""
        with self._lock:
            self._delay = seconds

    def reset(self) -> None:
        """Forget calls and grants and stop failing, between scenarios sharing one target."""
        with self._lock:
            self._calls.clear()
            self._active.clear()
            self._fail_status = self._fail_count = self._fail_until = None
            self._delay = 0.0

    # -- what happened -------------------------------------------------------------------------------

    @property
    def calls(self) -> list[WebhookCall]:
        """Every call so far, rejected and failed ones included, oldest first (a copy)."""
        with self._lock:
            return list(self._calls)

    @property
    def active(self) -> dict[str, JSON]:
        """The grants in force, by request id: the body of the grant that created each (a copy)."""
        with self._lock:
            return {request_id: dict(body) for request_id, body in self._active.items()}

    @property
    def rejected(self) -> list[WebhookCall]:
        """The calls refused for a missing or wrong signature."""
        return [call for call in self.calls if call.rejected]

    def grants_for(self, request_id: str) -> list[WebhookCall]:
        """Every grant call for a request, whatever its answer (filter on `.ok` for the applied ones)."""
        return [c for c in self.calls if c.request_id == request_id and c.action == "grant"]

    def revokes_for(self, request_id: str) -> list[WebhookCall]:
        """Every revoke call for a request, whatever its answer (filter on `.ok` for the applied ones)."""
        return [c for c in self.calls if c.request_id == request_id and c.action == "revoke"]

    def sign(self, body: bytes) -> str:
        """Return the `X-JIT-Signature` header value for a body, as the provider must compute it."""
        return "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()

    # -- the endpoint --------------------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        """Build the application: one POST route at `path`."""
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        """Answer one provider call: delay, injected failure, signature, shape, then apply."""
        arrived = time.time()
        raw = await request.read()
        signature = request.headers.get("X-JIT-Signature")
        with self._lock:
            delay = self._delay
        if delay:
            await asyncio.sleep(delay)
        body = _parse(raw)
        status, answer, rejected = self._decide(raw, signature, body)
        with self._lock:
            self._calls.append(WebhookCall(arrived, body, raw, signature, status, rejected))
        return web.json_response(answer, status=status)

    def _decide(self, raw: bytes, signature: str | None, body: JSON | None) -> tuple[int, JSON, bool]:
        """Return (status, answer, rejected) for a call, applying it to `active` when it is good."""
        injected = self._take_failure()
        if injected is not None:
            return injected, {"error": "injected failure"}, False
        if signature is None or not hmac.compare_digest(signature, self.sign(raw)):
            return 401, {"error": "bad signature"}, True
        if body is not None and body.get("action") == "list":
            # The optional reconcile call: every grant held here for that resource, as jit asked for it.
            with self._lock:
                live = [{"request_id": rid, "role": g["role"]} for rid, g in self._active.items()
                        if g["resource"] == body.get("resource")]  # fmt: skip
            return 200, {"live": live}, False
        if body is None or any(name not in body for name in _FIELDS) or body["action"] not in {"grant", "revoke"}:
            return 400, {"error": f"body must be a JSON object with {', '.join(_FIELDS)}"}, False
        with self._lock:
            if body["action"] == "grant":
                self._active[body["request_id"]] = body
            else:
                # Revoking what is already gone is success: the provider contract is idempotent.
                self._active.pop(body["request_id"], None)
            active = body["request_id"] in self._active
        answer: JSON = {"ok": True, "active": active}
        if body["action"] == "grant" and self.details is not None:
            answer["details"] = self.details
        return 200, answer, False

    def _take_failure(self) -> int | None:
        """Consume one injected failure, if one applies now; return its status."""
        with self._lock:
            if self._fail_status is None:
                return None
            if self._fail_until is not None and time.time() >= self._fail_until:
                self._fail_status = None
                return None
            if self._fail_count is not None:
                if self._fail_count <= 0:
                    self._fail_status = None
                    return None
                self._fail_count -= 1
            return self._fail_status


def _parse(raw: bytes) -> JSON | None:
    """Return the body as a JSON object, or None when it is not one."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
