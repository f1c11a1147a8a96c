"""One audit event as the trail holds it, and the small helpers every reader shares.

A record is the dict the store wrote (``seq``, ``time``, ``event``, ``actor``, ``request``, ``rule``,
``policy_version``, ``outcome``, ``error``, ``detail``, ``prev_hash``, ``hash``). Files and S3 batches
hold one record a line as canonical JSON (sorted keys, no spaces, UTF-8): the chain hash is
computed over the same canonical form, so a line can be re-hashed without knowing who wrote it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

#: The fields a record must have for its hash to be checked at all.
REQUIRED = ('seq', 'time', 'event', 'prev_hash', 'hash')
#: What the readers (tables, CSV, reports, filters) take each field they read to be, by its path; null or
#: absent is fine everywhere. ``time``: Unix seconds a date can be made of; ``seconds``: a finite number.
SHAPE = {
    'time': 'time', 'event': 'text', 'actor': 'text', 'rule': 'text', 'policy_version': 'text', 'outcome': 'text',
    'error': 'text', 'request': 'object', 'detail': 'object',
    'request.id': 'text', 'request.resource': 'text', 'request.role': 'text', 'request.duration': 'seconds',
    'request.reason': 'text', 'request.ticket': 'text', 'request.requester': 'object',
    'request.requester.slack_id': 'text', 'request.requester.email': 'text', 'request.requester.name': 'text',
    'request.requester.pipeline': 'text',
    'detail.by': 'seconds', 'detail.expires_at': 'time', 'detail.to': 'time',
}  # fmt: skip
#: Unix seconds of 0001-01-01 and of 10000-01-01: the years a date can be printed for.
_FIRST_TIME, _AFTER_LAST_TIME = -62135596800, 253402300800
_WHAT = {'text': 'a string', 'object': 'an object', 'seconds': 'a finite number', 'time': 'a time in Unix seconds'}


def dumps(record: dict[str, Any]) -> str:
    """The canonical JSON line of a record (without the newline)."""
    return json.dumps(record, sort_keys=True, separators=(',', ':'), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Entry:
    """One event as a source holds it: the record, or why it is not one, and where it is.

    ``where`` names the place for a person: ``stream entry 42-1``, ``audit.jsonl:42``,
    ``s3://bucket/audit/2026/11/28/...jsonl:7``.
    """

    where: str
    record: dict[str, Any] | None
    problem: str | None = None

    @property
    def seq(self) -> int | None:
        return self.record['seq'] if self.record is not None else None


def parse_entry(text: str | bytes, where: str) -> Entry:
    """An entry from one JSON line; a line that is not an audit record keeps its problem instead."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return Entry(where, None, f'not JSON ({exc.msg})')
    except UnicodeDecodeError:
        return Entry(where, None, 'not UTF-8 text')
    except ValueError as exc:  # an integer of more than 4,300 digits
        return Entry(where, None, f'not JSON jit reads ({exc})')
    except RecursionError:
        return Entry(where, None, 'not JSON jit reads (nested too deeply)')
    if not isinstance(data, dict):
        return Entry(where, None, 'not a JSON object')
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        return Entry(where, None, f'no {", ".join(missing)}')
    if not isinstance(data['seq'], int) or isinstance(data['seq'], bool) or data['seq'] < 1:
        return Entry(where, None, f'seq {data["seq"]!r} is not a positive integer')
    if not isinstance(data['time'], int | float) or isinstance(data['time'], bool):
        return Entry(where, None, f'time {data["time"]!r} is not a number')
    return Entry(where, data)


def _fits(kind: str, value: Any) -> bool:
    if kind == 'text':
        return isinstance(value, str)
    if kind == 'object':
        return isinstance(value, dict)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return False
    return kind == 'seconds' or _FIRST_TIME <= value < _AFTER_LAST_TIME


def shape_problem(record: dict[str, Any]) -> str | None:
    """What in a record the readers cannot show (:data:`SHAPE`), e.g. ``request.requester is a str, not an
    object``; None when nothing. jit never writes such a record: a file someone edited or made can hold one."""
    for path, kind in SHAPE.items():
        value: Any = record
        for key in path.split('.'):
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None and not _fits(kind, value):
            shown = repr(value) if len(repr(value)) <= 40 else f'a {type(value).__name__}'
            return f'{path} {shown} is not {_WHAT[kind]}'
    return None


def iso(ts: float | None) -> str:
    """``2026-11-28T09:30:00Z``: UTC, to the second (what tables, reports and CSV show)."""
    if ts is None:
        return ''
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec='seconds').replace('+00:00', 'Z')


def request_of(record: dict[str, Any]) -> dict[str, Any]:
    """The request summary of an event (empty for events about no request)."""
    req = record.get('request')
    return req if isinstance(req, dict) else {}
