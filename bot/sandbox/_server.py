"""Serve an aiohttp application on a free port, on the caller's event loop or on a thread of its own.

Part of `bot/sandbox/`; shared by the local Slack and the webhook target. Async tests and `jit sandbox`
serve on their running loop; plain synchronous tests need the server on a daemon thread with its own loop,
so that their blocking calls (urllib, `slack_sdk.WebClient`) do not freeze it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")

#: How long thread start-up and shutdown may take before we call the server stuck.
_THREAD_TIMEOUT = 10.0


class AppServer:
    """One aiohttp application served on one host and port, started and stopped on demand."""

    def __init__(self, make_app: Callable[[], web.Application], *, name: str = "sandbox-server") -> None:
        """Remember how to build the application; a fresh one is built per start, as aiohttp freezes apps.

        Args:
            make_app: Builds the `web.Application` to serve.
            name: The thread name, so a stuck thread is recognisable in a dump.
        """
        self._make_app = make_app
        self._name = name
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.base_url: str | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the server runs on while started, else None."""
        return self._loop

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving on the running loop and return the base URL, e.g. "http://127.0.0.1:4040/".

        Args:
            host: The interface to bind.
            port: The port; 0 picks a free one.
        """
        if self._runner is not None:
            raise RuntimeError("server already started")
        runner = web.AppRunner(self._make_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        self._loop = asyncio.get_running_loop()
        bound_host, bound_port = runner.addresses[0][:2]
        self.base_url = f"http://{bound_host}:{bound_port}/"
        return self.base_url

    async def stop(self) -> None:
        """Stop serving and release the port; stopping a stopped server does nothing."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        if self._thread is None:
            self._loop = None

    def start_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving on a new daemon thread with its own event loop and return the base URL."""
        if self._thread is not None:
            raise RuntimeError("server thread already running")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=self._run_loop, args=(loop,), name=self._name, daemon=True)
        self._thread, self._loop = thread, loop
        thread.start()
        try:
            return asyncio.run_coroutine_threadsafe(self.start(host, port), loop).result(_THREAD_TIMEOUT)
        except BaseException:
            self.stop_thread()
            raise

    def stop_thread(self) -> None:
        """Stop the server started by `start_in_thread`, end its loop and join the thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(_THREAD_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_THREAD_TIMEOUT)
        self._thread = None
        self._loop = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server thread's loop and wait for its result (thread mode only)."""
        if self._thread is None or self._loop is None:
            coro.close()
            raise RuntimeError("server is not running in a thread")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(_THREAD_TIMEOUT)

    def _run_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Thread body: run the loop until `stop_thread`, then finish pending work and close it."""
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
