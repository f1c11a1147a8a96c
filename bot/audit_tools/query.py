"""``jit audit query``: the events of a person, a resource, a request or a period, as a table or for machines.

``--user`` takes a Slack ID, an email or ``pipeline:NAME`` and matches the requester or the actor
(approvals are recorded by Slack ID: an email also finds them when the approval recorded the approver's email,
or once that person filed a request). The table and the CSV name people alike, ``Name <email>``, from every
event read so far, matched or not.
Filters combine with AND; ``--event`` may repeat and takes patterns (``grant.*``).
"""

from __future__ import annotations

import argparse
import shutil
import sys

from bot.audit.filters import EventFilter, aliases, event_warnings
from bot.audit.formats import EVENT_COLUMNS, event_row, write_csv, write_jsonl, write_table
from bot.audit.identities import Identities
from bot.audit_tools import EXIT_OK, add_period_arguments, add_source_arguments, guarded, open_source, period, records


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser)
    parser.add_argument('--user', help='a Slack ID, an email or pipeline:NAME (requester or actor)')
    parser.add_argument('--resource')
    parser.add_argument('--role')
    parser.add_argument('--event', action='append', default=[], metavar='NAME',
                        help='an event name or pattern (grant.revoked, request.*); may repeat')  # fmt: skip
    add_period_arguments(parser)
    parser.add_argument('--request', metavar='ID', help='one request (and its extensions)')
    parser.add_argument('--format', choices=('table', 'jsonl', 'csv'),
                        help='default: a table on a terminal, JSON lines otherwise')  # fmt: skip


@guarded
def run(args: argparse.Namespace) -> int:
    since, until = period(args)
    patterns = tuple(p.strip() for value in args.event for p in value.split(',') if p.strip())
    for warning in event_warnings(patterns):
        print(f'jit: warning: {warning}', file=sys.stderr)
    source = open_source(args)
    users: frozenset[str] = frozenset()
    if args.user:
        wanted = args.user.strip().lower()
        users = frozenset({wanted} | aliases(records(source)).get(wanted, set()))
    keep = EventFilter(users=users, resource=args.resource, role=args.role, events=patterns, since=since,
                       until=until, request=args.request)  # fmt: skip
    names = Identities()
    found = (r for r in names.learning(records(source)) if keep.matches(r))
    fmt = args.format or ('table' if sys.stdout.isatty() else 'jsonl')
    if fmt == 'csv':
        write_csv((event_row(r, names) for r in found), EVENT_COLUMNS, sys.stdout)
    elif fmt == 'jsonl':
        write_jsonl(found, sys.stdout)
    else:
        write_table(found, sys.stdout, width=shutil.get_terminal_size((160, 24)).columns, names=names)
    return EXIT_OK
