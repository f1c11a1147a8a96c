"""``jit audit report --resource R --since WHEN [--until WHEN]``: who had access to R in the period.

One row per grant whose access overlapped the period (started before it or still active included):
from when to when, how it ended, who approved it under which rule and policy version, and why.
Markdown (for a ticket or an audit binder) or ``--format csv``.
"""

from __future__ import annotations

import argparse
import sys
import time

from bot.audit.formats import write_csv
from bot.audit.report import REPORT_COLUMNS, access_report, markdown
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser)
    parser.add_argument('--resource', required=True, help='the resource, as the policy names it')
    add_period_arguments(parser)
    parser.add_argument('--format', choices=('markdown', 'csv'), default='markdown', help='default: markdown')


@guarded
def run(args: argparse.Namespace) -> int:
    now = time.time()
    since, until = period(args, now)
    if since is None:
        raise SourceError('give the period: --since WHEN (and --until WHEN, default now)')
    source = open_source(args)
    report = access_report(records(source), resource=args.resource, since=since, until=until or now)
    if args.format == 'csv':
        write_csv((g.row() for g in report.grants), REPORT_COLUMNS, sys.stdout)
    else:
        print(markdown(report, source.label))
    return EXIT_OK
