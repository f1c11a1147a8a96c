"""Where the audit trail is read from: the Redis stream, a JSONL file, or the S3 archive.

Each source yields :class:`~bot.audit.records.Entry` objects in the order it holds them and can
:meth:`check` itself: the chain (``bot.audit.chain``) plus what only that source knows - Redis its
head and the last event jit trimmed, S3 its signed digests and the SHA-256 of every batch.

The sources are handed their clients (a ``redis.Redis`` with ``decode_responses=True``, a boto3 S3
client) and import neither library: the command line builds them, tests point them anywhere.

The Redis stream and a file are read here; the S3 archive, which has its digests to check as well, in
:mod:`bot.audit.s3_source`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.audit.chain import GENESIS, Anchor, Finding, Tamper, Verdict, verify_chain
from bot.audit.records import Entry, parse_entry


@dataclass
class Check:
    """A source's verification: the chain's verdict, the first finding of any kind, and notes for people."""

    verdict: Verdict
    finding: Finding | None
    notes: list[str] = field(default_factory=list)
    extra: str = ''

    @property
    def ok(self) -> bool:
        return self.finding is None

    def summary(self) -> str:
        return self.verdict.summary() + self.extra


def in_range(entry: Entry, start: int | None, stop: int | None) -> bool:
    """Is ``entry`` within the seqs ``start``..``stop`` a reader asked for (either end open when None)?"""
    seq = entry.seq
    if seq is None:
        return True  # unreadable: the reader decides what to say about it
    return (start is None or seq >= start) and (stop is None or seq <= stop)


class RedisSource:
    """The stream ``<prefix>audit``: entry ID ``<seq>-1``, field ``event``."""

    def __init__(self, client: Any, *, prefix: str = 'jit:', page: int = 1000) -> None:
        self.redis, self.prefix, self.page = client, prefix, page
        self.label = f'Redis stream {prefix}audit'

    def _read(self, lower: str, upper: str) -> Iterator[tuple[str, Entry]]:
        while True:
            page = self.redis.xrange(self.prefix + 'audit', lower, upper, count=self.page)
            for entry_id, fields in page:
                yield entry_id, parse_entry(fields.get('event', ''), f'stream entry {entry_id}')
            if len(page) < self.page:
                return
            lower = '(' + page[-1][0]

    def entries(self, *, start: int | None = None, stop: int | None = None) -> Iterator[Entry]:
        # Incomplete IDs: ``5`` is 5-0 as a lower bound and 5-<max> as an upper one.
        for _id, entry in self._read(str(start) if start else '-', str(stop) if stop is not None else '+'):
            yield entry

    def head(self) -> Anchor | None:
        """``audit:head``: the last event written, what the next one chains to."""
        head = self.redis.hgetall(self.prefix + 'audit:head')
        return Anchor(int(head['seq']), head['hash']) if head.get('seq') else None

    def empty(self) -> bool:
        """No trail here at all: no stream, no head and no trim mark (an emptied stream with a head is not empty)."""
        keys = (self.prefix + 'audit', self.prefix + 'audit:head', self.prefix + 'audit:trimmed')
        return not self.redis.exists(*keys)

    def trimmed(self) -> Anchor | None:
        """``audit:trimmed``: the last event jit's retention removed from the stream (after a durable sink had it)."""
        mark = self.redis.hgetall(self.prefix + 'audit:trimmed')
        return Anchor(int(mark['seq']), mark['hash']) if mark.get('seq') else None

    def check(self) -> Check:
        """Verify from the first event present (chained to the last trimmed one) to the head."""
        for _ in range(5):
            mark = self.trimmed()
            heads: list[Anchor] = []

            def head(seen: list[Anchor] = heads) -> Anchor:
                return seen[-1]

            verdict = verify_chain(self._to_head(heads), start=mark or GENESIS, end=head)
            if self.trimmed() == mark:  # no trim ran meanwhile (it would look like events removed at the start)
                break
        notes = []
        if mark is not None:
            notes.append(f'seqs 1-{mark.seq} were trimmed by JIT_AUDIT_RETENTION after a durable sink had them')
        elif verdict.finding and verdict.finding.kind is Tamper.REMOVED and verdict.count == 0:
            notes.append('jit never trimmed this stream: events missing at its start were deleted by someone else')
        return Check(verdict, verdict.finding, notes)

    def _to_head(self, heads: list[Anchor]) -> Iterator[Entry]:
        """Every entry, then the head, read once they are all in (and the entries appended meanwhile, if any)."""
        last_id = ''
        while True:
            fresh = False
            for entry_id, entry in self._read('(' + last_id if last_id else '-', '+'):
                yield entry
                last_id, fresh = entry_id, True
            head = self.head() or GENESIS
            if not fresh or head.seq <= int(last_id.split('-')[0]):
                heads.append(head)
                return


class FileSource:
    """A JSONL file: the file sink (``JIT_AUDIT_FILE``) or an export."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.label = str(path)

    def entries(self, *, start: int | None = None, stop: int | None = None) -> Iterator[Entry]:
        with self.path.open('rb') as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    entry = parse_entry(line, f'{self.path}:{number}')
                    if in_range(entry, start, stop):
                        yield entry

    def empty(self) -> bool:
        """Not one line of an event in the file (an unreadable line counts as one)."""
        return next(self.entries(), None) is None

    def check(self) -> Check:
        verdict = verify_chain(self.entries())
        notes = []
        if verdict.first_seq not in (None, 1):
            notes.append(f'the file starts at seq {verdict.first_seq}: nothing here vouches for the events before it')
        return Check(verdict, verdict.finding, notes)
