"""``jit audit export``: every event of a range, as JSON lines (verifiable with ``verify --file``) or CSV.

The range is ``--since/--until`` (times) and/or ``--from-seq/--to-seq``; nothing given: everything.
Written to ``--output PATH`` or stdout; a count goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any, TextIO

from bot.audit.filters import EventFilter
from bot.audit.formats import EVENT_COLUMNS, event_row, write_csv, write_jsonl
from bot.audit.identities import Identities
from bot.audit_tools import (
    EXIT_OK,
    SourceError,
    add_period_arguments,
    add_source_arguments,
    guarded,
    open_source,
    period,
    records,
)


def _seq(text: str) -> int:
    # ASCII digits, and fewer than a Redis stream ID holds (int() reads other scripts' digits, and refuses
    # more than 4,300 of them); the refusal quotes only the start of what was typed.
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) < 1:
        raise argparse.ArgumentTypeError(f'{text[:40]!r} is not a seq (1, 2, 3...)')
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser)
    add_period_arguments(parser)
    parser.add_argument('--from-seq', type=_seq, metavar='SEQ', help='the first seq to export')
    parser.add_argument('--to-seq', type=_seq, metavar='SEQ', help='the last seq to export')
    parser.add_argument('--format', choices=('jsonl', 'csv'), default='jsonl', help='default: jsonl')
    parser.add_argument('--output', '-o', metavar='PATH', help='write here instead of stdout')


@guarded
def run(args: argparse.Namespace) -> int:
    since, until = period(args)
    if args.from_seq and args.to_seq and args.from_seq > args.to_seq:
        raise SourceError(f'--from-seq {args.from_seq} is after --to-seq {args.to_seq}')
    source = open_source(args)
    keep = EventFilter(since=since, until=until, from_seq=args.from_seq, to_seq=args.to_seq)
    span: dict[str, int] = {}  # the first and the last seq exported
    names = Identities()  # the CSV names people as reports do, from every event read

    def found() -> Iterator[dict[str, Any]]:
        for record in names.learning(records(source, start=args.from_seq, stop=args.to_seq)):
            if keep.matches(record):
                span.setdefault('first', record['seq'])
                span['last'] = record['seq']
                yield record

    target: TextIO
    with open(args.output, 'w', encoding='utf-8', newline='') if args.output else nullcontext(sys.stdout) as target:
        if args.format == 'csv':
            count = write_csv((event_row(r, names) for r in found()), EVENT_COLUMNS, target)
        else:
            count = write_jsonl(found(), target)
    seqs = f' (seq {span["first"]}-{span["last"]})' if span else ''
    print(f'exported {count} events{seqs}', file=sys.stderr)
    return EXIT_OK
