"""The audit chain recomputed: is every event the one jit wrote, in its place, with none missing?

Each record carries ``hash = chain_hash(record, prev_hash)`` and ``prev_hash`` = the hash of the event
before it (``GENESIS_HASH`` for seq 1), and seqs run 1, 2, 3... without gaps. :func:`verify_chain`
walks a source in order and stops at the first event that breaks this, then says how it is broken:

=============  ===============================================================================
``changed``    the event's hash does not match its content (a field edited; a line that is not
               JSON), or the next event does not chain to it (rewritten with a recomputed hash)
``removed``    seqs are missing: the next event present has a later seq, and the missing ones
               are nowhere further on
``inserted``   an event that is not part of the chain: the real continuation follows it, or it
               repeats a seq already seen
``reordered``  the expected seq is further on: events were moved or swapped
=============  ===============================================================================

The seq named is the first place where the source stops being the trail jit wrote: the changed
event, the first missing seq, the place where the foreign event sits, the first event out of place.
Only a failure looks further ahead (the next entry, and a scan of the rest for a seq), so a good
source is read once, in constant memory.

A source that does not start at seq 1 (a trimmed stream, an export of a range) is checked from its
first event on: with a ``start`` anchor (the last event jit trimmed) the first event must chain to
it; without one, the first event is taken as it is and the summary says "from seq N". An ``end``
anchor (Redis' ``audit:head``) catches events removed or rewritten at the very end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bot.audit.records import Entry
from bot.core.model import GENESIS_HASH, chain_hash


class Tamper(StrEnum):
    """How the first bad event is bad."""

    CHANGED = 'changed'
    REMOVED = 'removed'
    INSERTED = 'inserted'
    REORDERED = 'reordered'


@dataclass(frozen=True, slots=True)
class Anchor:
    """A known point of the chain: the event ``seq`` has hash ``hash`` (seq 0: the genesis)."""

    seq: int
    hash: str


GENESIS = Anchor(0, GENESIS_HASH)


@dataclass(frozen=True, slots=True)
class Finding:
    """The first place where a source is not the trail jit wrote."""

    kind: Tamper
    seq: int
    where: str
    message: str

    def __str__(self) -> str:
        return f'seq {self.seq} {self.kind}: {self.message} (at {self.where})'


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a verification found: the events checked good, and the first finding (None: intact)."""

    count: int
    first_seq: int | None
    last_seq: int | None
    head: str | None
    finding: Finding | None = None

    @property
    def ok(self) -> bool:
        return self.finding is None

    def summary(self) -> str:
        """``N events, chain intact, head HASH`` (``from seq N`` when the source starts later than seq 1)."""
        start = f' from seq {self.first_seq}' if self.first_seq not in (None, 1) else ''
        if self.finding is None:
            return f'{self.count} events{start}, chain intact, head {self.head or GENESIS_HASH}'
        return f'{self.finding}; {self.count} events{start} before it are intact'


def self_problem(entry: Entry) -> str | None:
    """Why an entry cannot be a genuine event on its own (unreadable, or its hash does not match it)."""
    if entry.record is None:
        return f'not an audit event: {entry.problem}'
    record = entry.record
    if not isinstance(record['prev_hash'], str) or not isinstance(record['hash'], str):
        return 'its hashes are not strings'
    try:
        if chain_hash(record, record['prev_hash']) != record['hash']:
            return 'its hash does not match its content'
    except UnicodeEncodeError:  # JSON's "\\ud800": no UTF-8 holds it, so jit never hashed (nor wrote) one
        return 'its text holds half a UTF-16 surrogate pair, which no event jit writes can'
    return None


class _Peekable:
    def __init__(self, entries: Iterable[Entry]) -> None:
        self._it: Iterator[Entry] = iter(entries)
        self._next: list[Entry] = []

    def __iter__(self) -> _Peekable:
        return self

    def __next__(self) -> Entry:
        return self._next.pop() if self._next else next(self._it)

    def peek(self) -> Entry | None:
        if not self._next:
            try:
                self._next.append(next(self._it))
            except StopIteration:
                return None
        return self._next[0]

    def find_seq(self, seq: int) -> bool:
        """Whether an event with this seq is further on (consumes the rest: only for a failure)."""
        return any(e.record is not None and e.record['seq'] == seq for e in self)


def verify_chain(
    entries: Iterable[Entry], *, start: Anchor | None = None, end: Anchor | Callable[[], Anchor] | None = None
) -> Verdict:
    """Check the chain over ``entries`` (in the source's order) and name the first bad event.

    Args:
        entries: the source's events in the order it holds them.
        start: what the first event must chain to: :data:`GENESIS` for a whole trail, the last trimmed
            event for a trimmed stream; None to take a first event with seq > 1 as given ("from seq N").
        end: the last event the source must end with (Redis' ``audit:head``), or a function that tells it
            once ``entries`` is exhausted (a live stream grows while it is read); None: no end check.
    """
    it = _Peekable(entries)
    count, first_seq = 0, None
    last, before = start, None
    checked_start = start is not None  # False while ``last`` is a first event taken as given
    last_where = 'the start'
    for entry in it:
        problem = self_problem(entry)
        record: dict[str, Any] = entry.record or {}
        if last is None:
            if problem is None and record['seq'] != 1:
                last, before = Anchor(record['seq'], record['hash']), Anchor(record['seq'] - 1, record['prev_hash'])
                count, first_seq, last_where = 1, record['seq'], entry.where
                continue
            if problem is not None:
                following = it.peek()
                if following is not None and following.record is not None and following.record['seq'] > 1:
                    seq = following.record['seq'] - 1
                    return Verdict(0, None, None, None, Finding(Tamper.CHANGED, seq, entry.where, problem))
            last, checked_start = GENESIS, True
        if problem is not None:
            return Verdict(count, first_seq, last.seq, last.hash,
                           Finding(Tamper.CHANGED, last.seq + 1, entry.where, problem))  # fmt: skip
        if record['seq'] == last.seq + 1 and record['prev_hash'] == last.hash:
            before, last = last, Anchor(record['seq'], record['hash'])
            count, last_where = count + 1, entry.where
            first_seq = first_seq or record['seq']
            continue
        finding = _classify(entry, last, before, it, last_where, first_only=not checked_start and count == 1,
                            at_start=count == 0, end=end)  # fmt: skip
        return Verdict(count, first_seq, last.seq, last.hash, finding)
    if end is not None:
        at_end = _check_end(last or start or GENESIS, _resolve(end), last_where)
        if at_end is not None:
            return Verdict(count, first_seq, last.seq if last else None, last.hash if last else None, at_end)
    if last is not None:
        return Verdict(count, first_seq, last.seq, last.hash)
    return Verdict(0, None, None, _resolve(end).hash if end is not None else None)


def _classify(
    entry: Entry, last: Anchor, before: Anchor | None, it: _Peekable, last_where: str, *, first_only: bool,
    at_start: bool, end: Anchor | Callable[[], Anchor] | None,
) -> Finding:  # fmt: skip
    """Say how ``entry`` (self-consistent, but not the continuation of ``last``) came to be where it is."""
    record = entry.record
    assert record is not None
    seq, where, expected = record['seq'], entry.where, last.seq + 1
    if first_only and seq < last.seq:
        # The first event of a source that may start anywhere was taken as given: it is the one out of place.
        assert before is not None
        if seq == 1 and record['prev_hash'] == GENESIS_HASH:
            if before.hash == record['hash']:
                return Finding(Tamper.REORDERED, 1, where, f'seq 1 comes after seq {last.seq}')
            return Finding(Tamper.INSERTED, 1, last_where, f'an event claiming seq {last.seq} comes before seq 1')
        if it.find_seq(seq - 1):
            return Finding(Tamper.REORDERED, seq - 1, last_where, f'seq {last.seq} comes before seq {seq - 1}')
        message = f'an event claiming seq {last.seq} is not part of the chain'
        return Finding(Tamper.INSERTED, seq - 1, last_where, message)
    following = it.peek()
    after = following.record if following is not None and self_problem(following) is None else None
    if after is not None and after['seq'] == expected and after['prev_hash'] == last.hash:
        if record['prev_hash'] == after['hash']:
            return Finding(Tamper.REORDERED, expected, where, f'seq {seq} comes before seq {expected}')
        return Finding(Tamper.INSERTED, expected, where,
                       f'an event claiming seq {seq} sits between seq {last.seq} and seq {expected}, '
                       'and is not part of the chain')  # fmt: skip
    if record['hash'] == last.hash:
        return Finding(Tamper.INSERTED, expected, where, f'a second copy of seq {seq}')
    if seq == last.seq and before is not None and record['prev_hash'] == before.hash:
        message = f'an event claiming seq {seq} is not part of the chain: the real seq {seq} follows it'
        return Finding(Tamper.INSERTED, last.seq, last_where, message)
    if seq == expected:
        if at_start:
            anchor = 'the genesis' if last.seq == 0 else 'the last event trimmed from the stream'
            return Finding(Tamper.CHANGED, seq, where, f'it does not chain to seq {last.seq} ({anchor})')
        if following is None and end is not None and _resolve(end).hash != record['hash']:
            return Finding(Tamper.INSERTED, expected, where, f'it does not chain to seq {last.seq} nor match the head')
        if after is None or after['prev_hash'] == record['hash']:
            return Finding(Tamper.CHANGED, last.seq, last_where,
                           f'seq {expected} does not chain to it: it was rewritten with a new hash')  # fmt: skip
        return Finding(Tamper.CHANGED, expected, where, f'it does not chain to seq {last.seq}')
    if seq > expected:
        if it.find_seq(expected):
            return Finding(Tamper.REORDERED, expected, where,
                           f'seq {seq} comes right after seq {last.seq}; seq {expected} is further on')  # fmt: skip
        gap = f'seq {expected}' if seq == expected + 1 else f'seqs {expected}-{seq - 1}'
        return Finding(Tamper.REMOVED, expected, where, f'{gap} missing: seq {seq} follows seq {last.seq}')
    return Finding(Tamper.INSERTED, expected, where, f'seq {seq} appears again after seq {last.seq}')


def _resolve(end: Anchor | Callable[[], Anchor]) -> Anchor:
    return end if isinstance(end, Anchor) else end()


def _check_end(last: Anchor, end: Anchor, where: str) -> Finding | None:
    """The source must end exactly at the head."""
    if end.seq > last.seq:
        gap = f'seq {end.seq}' if end.seq == last.seq + 1 else f'seqs {last.seq + 1}-{end.seq}'
        return Finding(Tamper.REMOVED, last.seq + 1, where, f'{gap} missing at the end: the head is at seq {end.seq}')
    if end.seq == last.seq and end.hash != last.hash:
        return Finding(Tamper.CHANGED, last.seq, where, 'the last event does not match the head (rewritten)')
    if end.seq < last.seq:
        return Finding(Tamper.INSERTED, end.seq + 1, where, f'events after the head (seq {end.seq})')
    return None
