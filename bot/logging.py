"""structlog for jit and, through the root handler, for Bolt, RQ and botocore too.

:func:`configure_logging` is called once, by the ``jit`` command; importing this module does
nothing. Keys that look like secrets are masked before anything is rendered.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog
import structlog.tracebacks
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

_SECRET_KEY = re.compile(r'token|secret|password|passwd|authorization|signature|dsn|private_key', re.I)


def redact_secrets(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Mask values whose key looks like a secret: no token or password ever reaches the logs."""
    for key in list(event_dict):
        if _SECRET_KEY.search(key) and event_dict[key] not in (None, ''):
            event_dict[key] = '***'
    return event_dict


class ClientMistakes(logging.Filter):
    """aiohttp logs a request it cannot parse (a NUL byte in a header, a broken request line) at error level
    with a traceback; it already answered 400, and the mistake is the client's. So it does with a body that is not
    in the Content-Encoding it claims, when it reads the rest of it after the answer ("Unhandled exception": a
    ``RequestPayloadError`` caused by a ``ContentEncodingError``). One warning line instead, with the status and
    the kind of error, never the offending bytes (they may be a token)."""

    FIELDS = ('status', 'error', 'peer')

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, RequestPayloadError) and isinstance(exc.__cause__, HttpProcessingError):
            exc = exc.__cause__
        status = getattr(exc, 'status', None) or getattr(exc, 'code', None)
        if exc is None or not isinstance(status, int) or not 400 <= status < 500:
            return True
        message, prefix = record.getMessage(), 'Error handling request from '
        peer = message.removeprefix(prefix).strip() or None if message.startswith(prefix) else None
        record.levelno, record.levelname = logging.WARNING, 'WARNING'
        record.msg, record.args = 'http.bad_request', ()
        record.exc_info, record.exc_text = None, None
        record.status, record.error, record.peer = status, type(exc).__name__, peer
        return True


def configure_logging(*, json: bool | None = None, level: str = 'INFO') -> None:
    """Route structlog and stdlib logging through one renderer: JSON off a TTY, console on one."""
    as_json = (not sys.stderr.isatty()) if json is None else json
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt='iso', utc=True),
        redact_secrets,
    ]
    # Tracebacks without their frames' local variables: a local can hold a token, a password or a whole
    # request body, and redact_secrets only sees the event's own keys.
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    no_locals = structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
    tail = [structlog.processors.ExceptionRenderer(no_locals)] if as_json else []
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(allow=ClientMistakes.FIELDS)],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail, renderer],
    ))  # fmt: skip
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log would repeat jit's own (bot.access_log), which never logs a header or a query string.
    logging.getLogger('aiohttp.access').setLevel(logging.WARNING)
    logging.getLogger('aiohttp.server').addFilter(ClientMistakes())
    # urllib3 logs every request's path and query at debug level: a Teams webhook's URL (its sig=) and a webhook
    # provider's are secrets, so its debug lines stay out even when jit's own are shown.
    logging.getLogger('urllib3.connectionpool').setLevel(max(logging.INFO, root.level))
