"""Keep the local Slack's server to the browser tab and the processes on this machine that were meant to reach it.

Part of `bot/sandbox/`. The server listens on 127.0.0.1, but that alone does not stop a web page the user visits
elsewhere: it can post to `/sandbox/command` cross-site (a `text/plain` body needs no CORS preflight), and through
DNS rebinding (its own name resolving to 127.0.0.1) it can read `/sandbox/state` as same-origin. So
`loopback_only` refuses, on every route, a `Host` that is not the loopback address and port the request came in on
(421), and on the page's own POSTs (`/sandbox/...`: any but the Slack routes') a body that is not
`application/json` (415: a cross-site page cannot send that without a preflight the server never grants) and an
`Origin` other than the page's own (403).

The Slack routes (`/api/...`, `/response/...`, `/socket-mode`) get the `Host` check alone, which every client
(jit, slack_sdk, the tests) passes as it reaches them at the URL the local Slack gave it; their bodies stay as
Slack takes them (forms, query strings, JSON), and their tokens, `response_url`s and tickets stay their keys.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

__all__ = ['loopback_hosts', 'loopback_only']

#: The names a browser on this machine reaches the loopback interface by.
LOOPBACK_NAMES = ('127.0.0.1', 'localhost', '[::1]')
#: The methods that change nothing, which need no JSON body nor same-origin check.
_SAFE_METHODS = frozenset({'GET', 'HEAD', 'OPTIONS'})
#: Where the Slack protocol's routes live, whose bodies stay as Slack takes them; every other POST is the page's.
_SLACK_PREFIXES = ('/api/', '/response/')

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def loopback_hosts(port: int) -> frozenset[str]:
    """The `Host` values that name this server on `port`: 127.0.0.1, localhost and [::1], with the port."""
    return frozenset(f'{name}:{port}' for name in LOOPBACK_NAMES)


def _local_port(request: web.Request) -> int | None:
    """The port the request came in on, from the socket itself (not from anything the client says)."""
    sockname = request.transport.get_extra_info('sockname') if request.transport is not None else None
    if isinstance(sockname, tuple) and len(sockname) >= 2 and isinstance(sockname[1], int):
        return sockname[1]
    return None


def _refuse(status: int, text: str) -> web.Response:
    """A short plain answer for a refused request."""
    return web.Response(status=status, text=text + '\n', content_type='text/plain')


@web.middleware
async def loopback_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Serve a request only when it names this server by a loopback address, and page POSTs only from the page."""
    port = _local_port(request)
    host = request.headers.get(hdrs.HOST, '').lower()
    if port is None or host not in loopback_hosts(port):
        return _refuse(421, f'jit sandbox answers only at http://127.0.0.1:{port} or http://localhost:{port}')
    if request.method not in _SAFE_METHODS and not request.path.startswith(_SLACK_PREFIXES):
        if request.content_type != 'application/json':
            return _refuse(415, 'jit sandbox takes only application/json here')
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None and origin.lower() != f'http://{host}':
            return _refuse(403, 'jit sandbox takes this only from its own page')
    return await handler(request)
