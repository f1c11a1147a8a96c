"""Events printed for people (a table) and for machines (JSON lines, CSV). Pure: writes to a text stream.

CSV cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``) get a
leading ``'``: reasons are typed by requesters, and an auditor opens the file in a spreadsheet. The
JSON lines are the faithful form (``jit audit verify --file`` checks them). The table and the CSV name people
as reports do (:class:`~bot.audit.identities.Identities`: ``Name <email>``), from what the events read so far
say about them (the CSV also keeps the recorded Slack ID and email columns as they were).

Everything printed for people goes through :func:`visible`: a reason, a ticket or a name is typed by a requester
(Slack or a pipeline), and a terminal would obey the escape sequences in it (clear the screen, wipe a row, retitle
the window, plant a link) or reorder it (bidi overrides). The JSON lines escape the same characters as ``\\uXXXX``,
which reads back as the very same text.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from bot.audit.identities import Identities
from bot.audit.records import dumps, iso, request_of
from bot.core import characters
from bot.core.durations import format_duration
from bot.core.model import AuditName

EVENT_COLUMNS = (
    'seq', 'time', 'event', 'actor', 'request_id', 'requester_slack_id', 'requester_email', 'requester_pipeline',
    'resource', 'role', 'duration', 'reason', 'ticket', 'rule', 'policy_version', 'outcome', 'error', 'detail',
    'unix_time', 'prev_hash', 'hash', 'actor_identity', 'requester_identity',
)  # fmt: skip
_FORMULA = ('=', '+', '-', '@', '\t', '\r')


def visible(value: Any, *, keep: str = '') -> str:
    """``value`` as text a terminal shows as it is (:func:`bot.core.characters.visible`): each control, invisible
    character and lone surrogate not in ``keep`` written as ``\\x1b`` or ``\\u202e``, so a reader sees that it was
    there and what it was."""
    return characters.visible('' if value is None else str(value), keep=keep)


def csv_safe(value: Any) -> str:
    """A CSV cell: visible (a quoted cell keeps its line breaks), and never a spreadsheet formula."""
    text = visible(value, keep='\n')
    return "'" + text if text.startswith(_FORMULA) else text


def event_row(record: dict[str, Any], names: Identities | None = None) -> dict[str, Any]:
    """One event flattened for CSV; ``*_identity`` as ``names`` (having seen this record) names the people."""
    if names is None:
        names = Identities()
    names.learn(record)
    req = request_of(record)
    requester = req.get('requester') or {}
    detail = record.get('detail')
    return {
        'seq': record.get('seq'), 'time': iso(record.get('time')), 'event': record.get('event'),
        'actor': record.get('actor'), 'request_id': req.get('id'), 'requester_slack_id': requester.get('slack_id'),
        'requester_email': requester.get('email'), 'requester_pipeline': requester.get('pipeline'),
        'resource': req.get('resource'), 'role': req.get('role'), 'duration': req.get('duration'),
        'reason': req.get('reason'), 'ticket': req.get('ticket'), 'rule': record.get('rule'),
        'policy_version': record.get('policy_version'), 'outcome': record.get('outcome'),
        'error': record.get('error'), 'detail': json.dumps(detail, sort_keys=True) if detail else '',
        'unix_time': record.get('time'), 'prev_hash': record.get('prev_hash'), 'hash': record.get('hash'),
        'actor_identity': names.actor(record), 'requester_identity': names.requester(requester) if requester else '',
    }  # fmt: skip


def write_csv(rows: Iterable[dict[str, Any]], columns: Sequence[str], out: TextIO) -> int:
    writer = csv.writer(out, lineterminator='\n')
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow([csv_safe(row.get(c)) for c in columns])
        count += 1
    return count


def _json_escape(match: re.Match[str]) -> str:
    return f'\\u{ord(match.group()):04x}'


def write_jsonl(records: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Each record as its canonical line, with what :func:`visible` escapes written as ``\\uXXXX`` (JSON already
    does so for C0 controls): the same values, so ``verify --file`` hashes them as jit did."""
    count = 0
    for record in records:
        out.write(characters.ESCAPED.sub(_json_escape, dumps(record)) + '\n')
        count += 1
    return count


def _note(record: dict[str, Any]) -> str:
    req = request_of(record)
    detail = record.get('detail') or {}
    parts = []
    if record.get('error'):
        parts.append(f'error: {record["error"]}')
    if record.get('event') == AuditName.REQUEST_CREATED and req.get('reason'):
        parts.append(f'reason: {req["reason"]}')
    for key in ('why', 'progress', 'by', 'extends', 'extension', 'kept_for'):
        if detail.get(key) not in (None, '', []):
            value = format_duration(detail[key]) if key == 'by' else detail[key]
            parts.append(f'{key}: {value}')
    if not req and record.get('policy_version'):
        parts.append(f'policy {record["policy_version"]}')
    return '; '.join(str(p) for p in parts)


TABLE_COLUMNS = ('SEQ', 'TIME (UTC)', 'EVENT', 'ACTOR', 'REQUEST', 'REQUESTER', 'ACCESS', 'OUTCOME', 'NOTE')
_CAPS = {'ACTOR': 32, 'REQUESTER': 32, 'ACCESS': 32}


def table_cells(record: dict[str, Any], names: Identities | None = None) -> list[str]:
    if names is None:
        names = Identities()
    names.learn(record)
    req = request_of(record)
    access = ''
    if req:
        access = f'{req.get("role")} on {req.get("resource")}'
        if req.get('duration'):
            access += f' {format_duration(req["duration"])}'
    cells = [str(record.get('seq', '')), iso(record.get('time')).replace('T', ' ').rstrip('Z'),
             str(record.get('event', '')), names.actor(record), str(req.get('id') or ''),
             names.requester(req['requester']) if req.get('requester') else '', access,
             str(record.get('outcome') or ''), _note(record)]  # fmt: skip
    return [visible(c) for c in cells]


def write_table(
    records: Iterable[dict[str, Any]], out: TextIO, *, width: int = 160, names: Identities | None = None
) -> int:
    """Aligned columns for a terminal; the last column is cut to ``width``."""
    names = Identities() if names is None else names
    rows = [table_cells(r, names) for r in records]
    if not rows:
        out.write('no events match\n')
        return 0
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(TABLE_COLUMNS)]
    widths = [min(w, _CAPS.get(h, w)) for w, h in zip(widths, TABLE_COLUMNS, strict=True)]
    used = sum(widths[:-1]) + 2 * (len(widths) - 1)
    widths[-1] = max(20, min(widths[-1], width - used))

    def line(cells: Sequence[str]) -> str:
        cut = [c if len(c) <= w else c[: w - 1] + '…' for c, w in zip(cells, widths, strict=True)]
        return '  '.join(c.ljust(w) for c, w in zip(cut, widths, strict=True)).rstrip()

    out.write(line(TABLE_COLUMNS) + '\n')
    for row in rows:
        out.write(line(row) + '\n')
    out.write(f'{len(rows)} event(s)\n')
    return len(rows)
