"""The load benchmark's HTTP clients: signed Slack requests sent all at once and timed, and the pipeline API."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass
class Sent:
    sent: float  # time.time() just before the request left
    elapsed: float  # seconds until the whole answer was read
    status: int
    body: str

    @property
    def text(self) -> str:
        try:
            parsed = json.loads(self.body) if self.body.lstrip().startswith('{') else None
        except ValueError:
            parsed = None
        return str(parsed.get('text') or '') if isinstance(parsed, dict) else self.body


def post_at_once(items: list[tuple[str, bytes, dict[str, str]]]) -> list[Sent]:
    """POST every (url, body, headers) at the same moment (one event loop, one connection each); the answers."""
    import aiohttp

    async def run() -> list[Sent]:
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

            async def one(url: str, body: bytes, headers: dict[str, str]) -> Sent:
                sent, started = time.time(), time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as answer:
                        text = await answer.text(errors='replace')
                        return Sent(sent, time.perf_counter() - started, answer.status, text)
                except Exception as exc:  # a failed request is a data point, not a crash
                    return Sent(sent, time.perf_counter() - started, 0, repr(exc))

            return list(await asyncio.gather(*(one(*item) for item in items)))

    return asyncio.run(run())


class Api:
    """The pipeline API over urllib, as a pipeline would call it."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base, token

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {'Authorization': f'Bearer {self.token}'}
        if data is not None:
            headers['Content-Type'] = 'application/json'
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read() or b'{}')
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                return err.code, json.loads(raw or b'{}')
            except ValueError:
                return err.code, {'raw': raw[:200].decode(errors='replace')}
        except OSError as exc:
            return 0, {'error': repr(exc)}
