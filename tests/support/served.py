"""``jit serve``'s web app in a thread of the test process, for tests that hand it dependencies of their own."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web

from tests.support.redis_server import free_port


class Served:
    """``jit serve``'s web app in a thread of this process, on a free port."""

    def __init__(self, app: web.Application) -> None:
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app)
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, '127.0.0.1', self.port).start())
        self.ready.set()
        self.loop.run_forever()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
