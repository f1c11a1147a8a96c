"""Where ``jit ci`` sends its calls and with what token, read from the environment and checked first.

``--url`` or ``JIT_URL``, and ``JIT_TOKEN``: every problem with them is found before any call, and all of
them are said in one line, so a pipeline's first failed run names everything to fix. The token is never
a flag (it would land in shell history and ``ps``) and is never quoted back, even when it is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bot.ci.errors import CiError

#: What the server accepts after ``Bearer`` (``bot.api.server``); anything else is not a token.
_TOKEN = re.compile(r'[A-Za-z0-9._~+/-]{1,200}=*')


@dataclass(frozen=True, slots=True)
class Target:
    """Where to send calls and with what token (``repr`` leaves the token out)."""

    base: str  # the server's root URL, without a trailing slash
    token: str = field(repr=False)
    label: str = 'JIT_URL'  # where ``base`` came from, for messages


def load_target(url: str | None, environ: Mapping[str, str]) -> Target:
    """``--url`` or ``JIT_URL``, and ``JIT_TOKEN``, checked; every problem in one line."""
    label = '--url' if url else 'JIT_URL'
    url = (url or environ.get('JIT_URL') or '').strip()
    token = (environ.get('JIT_TOKEN') or '').strip()  # a secret store's trailing newline is not part of it
    problems = []
    if not url:
        problems.append('JIT_URL is not set: set it to where jit serve answers (e.g. https://jit.example.com)')
    else:
        problem = _url_problem(url)
        if problem:
            problems.append(f'{label} {problem}')
    if not token:
        problems.append('JIT_TOKEN is not set: give the pipeline its token (from `jit ci token NAME`) as a secret')
    elif token.startswith('sha256:') or ':sha256:' in token:
        problems.append('JIT_TOKEN holds the hash line for JIT_API_TOKENS, not the token `jit ci token` printed')
    elif not _TOKEN.fullmatch(token):
        problems.append('JIT_TOKEN is not a token (expected jit_ and 43 letters, digits, - or _)')
    if problems:
        raise CiError('; '.join(problems))
    return Target(url.rstrip('/'), token, label)


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return f'{url!r} is not a URL'
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        return f'{url!r} is not an http(s):// URL of the jit server'
    if parts.username is not None or parts.password is not None:
        return 'must not carry a user or password (the token is JIT_TOKEN)'
    if parts.query or parts.fragment:
        return f"{url!r} should be the server's address only, without ?query or #fragment"
    return None
