"""Request bodies are read as sent: a ``Content-Encoding`` other than ``identity`` is refused before the body is read.

aiohttp decodes a gzip or deflate body as it arrives, and one that is not what it claims does not always fail
cleanly: the handler's ``read()`` could wait for a body that never ended (seen 2 times in 15 for a deflate API
call, on an idle machine) until the client gave up. Nobody sends jit a compressed body: Slack does not, ``jit
ci`` does not, browsers do not compress a form. So the Slack endpoint, the pipeline API and the decision page
refuse any other coding at once, with the 400 each gives a body it cannot read, and never start reading it.
"""

from __future__ import annotations

from aiohttp import web


def encoded(request: web.Request) -> bool:
    """Whether the body claims a content coding (gzip, deflate, br, ...) rather than coming as it is."""
    headers = request.headers.getall('Content-Encoding', [])
    codings = (coding.strip().lower() for header in headers for coding in header.split(','))
    return any(coding not in ('', 'identity') for coding in codings)
