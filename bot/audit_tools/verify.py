"""``jit audit verify``: recompute the hash chain and name the first event changed, removed, inserted or reordered.

Exit 0 with one line, ``N events, chain intact, head HASH`` (``from seq N`` when the source starts
later, e.g. a stream trimmed by ``JIT_AUDIT_RETENTION``); exit 1 with the first problem,
``seq 42 changed: ...``; exit 2 when the source cannot be read; exit 3 when it holds no trail at all
(``no audit trail found at WHERE``: an empty source is not a chain to call intact). ``--s3`` also checks every batch
against its digest and the digests' signatures and chain. Notes (what was trimmed, which key signed)
go to stderr, so stdout stays one line.
"""

from __future__ import annotations

import argparse
import sys

from bot.audit_tools import EXIT_OK, EXIT_PROBLEMS, add_source_arguments, guarded, open_source


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser)
    parser.add_argument('--public-key', metavar='PEM', help='with --s3: the Ed25519 public key the digests must be '
                        'signed with (default: the public half of JIT_AUDIT_DIGEST_KEY, when set)')  # fmt: skip


@guarded
def run(args: argparse.Namespace) -> int:
    source = open_source(args)
    check = source.check()
    for note in check.notes:
        print(f'note: {note}', file=sys.stderr)
    if check.finding is None:
        print(check.summary())
        return EXIT_OK
    print(str(check.finding))
    if check.finding is check.verdict.finding:
        start = f' from seq {check.verdict.first_seq}' if check.verdict.first_seq not in (None, 1) else ''
        print(f'{source.label}: {check.verdict.count} events{start} are intact before it', file=sys.stderr)
    return EXIT_PROBLEMS
