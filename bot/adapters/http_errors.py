"""Why an HTTP endpoint could not be reached, in words that name no host, port or URL.

urllib3's messages quote the URL (a webhook provider's or a Teams channel's, whose query holds its signature):
they must not reach a log line, an audit event or a message. Used by the webhook provider and the Teams sender.
"""

from __future__ import annotations

import ssl

import urllib3


def unreachable_why(exc: BaseException) -> str:
    """``timed out``, ``Connection refused``, ``certificate has expired``…, or the exception's type name."""
    # NewConnectionError is a ConnectTimeoutError in urllib3 (for history's sake): a refusal is not a timeout.
    if not isinstance(exc, urllib3.exceptions.NewConnectionError) and isinstance(
        exc, urllib3.exceptions.TimeoutError | TimeoutError
    ):
        return 'timed out'
    while exc.__context__ is not None and not isinstance(exc, OSError):
        exc = exc.__context__
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f'certificate {exc.verify_message}'
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
