"""One ``http.request`` log line for each request ``jit serve`` answers, and a request ID that ties the
request's log lines together.

The line gives the method, the path, the status and ``duration_ms``. The path is the route's pattern
(``/api/v1/requests/{id}``), so that a client's typing does not end up in the log; a path that no route
matches (a 404, a 405) is logged as sent (still percent-encoded), without its query string, cut at 200 characters;
but under ``/decide/``, where the rest of the path is a decision link's token, as ``/decide/{token}``.
The line never holds a header value, a query string or a body. A Slack request's team and user come from
its body, so they are on the listeners' lines and not on this one.

The request ID comes from the client's ``X-Request-ID`` when there is exactly one and it is short and plain
(``[A-Za-z0-9._-]{1,64}``): then a proxy's log and jit's name the same request. Otherwise (more than 64
characters, a space, a quote, a newline) jit makes a new one, because such a value is not safe to log. It is
bound to every log line of the request as ``http_request_id``. The name is not ``request_id`` because that
key already names an access request (``r-…``) in jit's log lines, some of them written during an HTTP
request (``api.filed``); a line's own ``request_id`` would hide the bound one. Every answer carries the ID
back as ``X-Request-ID``, including refusals, 404s and aiohttp's own 500.

``/healthz``, ``/readyz`` and ``/metrics`` are logged at debug level. Orchestrators and Prometheus ask them
every few seconds, and
thousands of identical lines a day would bury the lines that matter. What they answer is the orchestrator's
to act on, and ``LOG_LEVEL=DEBUG`` shows them.

aiohttp runs each request in its own asyncio task, with a copy of the server's context (aiohttp #3406). So
the ID bound here ends with the request and reaches no other request. It stays bound after this line, so
that aiohttp's own line about an unhandled exception, written after the middleware has returned, carries
it too. Bolt runs listeners in tasks of their own, which copy the context and keep the ID even after the
answer has gone.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

log = structlog.get_logger(__name__)

HEADER = 'X-Request-ID'
#: The log key of the request ID (see the module docstring for why it is not ``request_id``).
KEY = 'http_request_id'
REQUEST_ID = web.RequestKey('http_request_id', str)
_CLIENT_ID = re.compile(r'[A-Za-z0-9._-]{1,64}')
#: Asked every few seconds by orchestrators and Prometheus: logged at debug level.
HEALTH_CHECKS = frozenset({'/healthz', '/readyz', '/metrics'})
#: Paths whose rest is a credential: a decision link's token. A request there that matches no route (a mail
#: scanner's HEAD, a link with a word glued on) is logged as the prefix and ``{token}``, never as sent.
SECRET_PATHS = ('/decide/teams/', '/decide/')
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def request_id(values: list[str]) -> str:
    """The client's ID when it sent exactly one that is safe to log and echo, else a new one."""
    if len(values) == 1 and _CLIENT_ID.fullmatch(values[0]):
        return values[0]
    return uuid.uuid4().hex


def logged_path(request: web.Request) -> str:
    """The matched route's pattern, or, for a path that no route matches, the path as sent (no query); under
    ``/decide/`` the pattern whatever followed, as what follows is a decision link's token (a credential)."""
    resource = request.match_info.route.resource
    if resource is not None:
        return resource.canonical
    for prefix in SECRET_PATHS:
        if request.rel_url.path.startswith(prefix):
            return f'{prefix}{{token}}'
    return request.rel_url.raw_path[:200]


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind the request ID, answer, and log one ``http.request`` line, whatever the answer was.

    This must be the outermost middleware, so that it sees the guards' refusals too. Exceptions pass
    through unchanged: aiohttp still turns an ``HTTPException`` into its answer and anything else into a 500.
    """
    rid = request[REQUEST_ID] = request_id(request.headers.getall(HEADER, []))
    before = structlog.contextvars.get_contextvars().keys()
    structlog.contextvars.bind_contextvars(**{KEY: rid})
    started = time.perf_counter()
    status: int | None = None  # stays None only when the request is cancelled (the server is stopping)
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except Exception:
        status = 500  # aiohttp answers 500 and logs the traceback
        raise
    finally:
        # The listeners bound what they read in the body (slack_team, slack_user); it stays off this line.
        body_keys = structlog.contextvars.get_contextvars().keys() - before - {KEY}
        structlog.contextvars.unbind_contextvars(*body_keys)
        path = logged_path(request)
        write = log.debug if path in HEALTH_CHECKS else log.info
        write('http.request', method=request.method[:16], path=path, status=status,
              duration_ms=round((time.perf_counter() - started) * 1000, 1), **{KEY: rid})  # fmt: skip


async def send_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """Give every answer its ``X-Request-ID``; an ``on_response_prepare`` signal, so that aiohttp's own
    answers (an ``HTTPException``, the 500 after an unhandled exception) carry it too."""
    rid = request.get(REQUEST_ID)
    if rid is not None:
        response.headers[HEADER] = rid
