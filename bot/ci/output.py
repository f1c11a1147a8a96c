"""What ``jit ci`` writes: progress and problems on stderr, the result on stdout in ``--format``.

Kept apart from the calls so that the one rule of output holds in one place: stdout carries only the
result (``--format env >> $GITHUB_ENV`` and ``--format json | jq`` work), everything else is a ``jit:``
line on stderr, and nothing written anywhere is the token.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from bot.ci.errors import Unusable
from bot.core.model import RequestStatus

S = RequestStatus


def say(text: str) -> None:
    """A progress or problem line on stderr (stdout is the result's)."""
    print(f'jit: {text}', file=sys.stderr, flush=True)


def format_filed(view: dict[str, Any], fmt: str) -> str:
    """What ``request`` without ``--wait`` prints: the ID and where it stands."""
    if fmt == 'json':
        return json.dumps(view)
    if fmt == 'env':
        return f'JIT_REQUEST_ID={view["id"]}\nJIT_STATUS={view.get("status")}'
    return f'request {view["id"]} {view.get("status")}'


def format_result(view: dict[str, Any], details: dict[str, Any], fmt: str) -> str:
    """What ``request --wait`` prints once granted, in ``--format``.

    Raises:
        Unusable: ``env`` and a detail that cannot be one ``NAME=value`` line (a newline would let the
            rest of the value set other variables in ``$GITHUB_ENV``), or two details with one name.
    """
    if fmt == 'json':
        return json.dumps({**view, 'details': details})
    if fmt == 'env':
        lines = {'JIT_REQUEST_ID': str(view['id']), 'JIT_EXPIRES_AT': str(view.get('expires_at') or '')}
        for key, value in details.items():
            name = 'JIT_' + re.sub(r'[^A-Za-z0-9]', '_', str(key)).upper()
            text = _plain(value)
            if any(c in text for c in '\r\n\x00'):
                raise Unusable(f'detail {key!r} spans lines, so it cannot be one env line (use --format json)')
            if name in lines:
                raise Unusable(f'detail {key!r} would be {name}, which is already set (use --format json)')
            lines[name] = text
        return '\n'.join(f'{name}={text}' for name, text in lines.items())
    head = f'request {view["id"]} {view.get("status")} until {view.get("expires_at")}'
    return '\n'.join([head, *(f'{key}: {_plain(value)}' for key, value in details.items())])


def _plain(value: Any) -> str:
    if isinstance(value, str):
        return value
    return '' if value is None else json.dumps(value)


def describe_release(answer: dict[str, Any]) -> str:
    """What a release did, in words: the access ends now, it was cancelled, or it was already over."""
    request_id, state = answer.get('id'), answer.get('status')
    if answer.get('ending'):
        return f'{request_id} {state}: the access ends now'
    if state == S.CANCELLED:
        return f'{request_id} cancelled: it will not be granted'
    return f'{request_id} already {state}: nothing to give back'
