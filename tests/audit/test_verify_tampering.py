"""``jit audit verify`` against tampered histories: every tampering is caught and the right seq is named.

A seeded history (the November one of ``tests/audit/seed.py``, 53 events from the real use cases) is
exported to a file, tampered with at random - a field edited (or the line garbled), one event deleted,
two swapped, a forged event inserted (its hash recomputed, so it is self-consistent, but it does not
chain), a run in the middle cut out - and verified; 1,000 times, with a fixed seed. Some tamperings
cannot be seen from a file alone and are left to the stores that have an anchor: deleting the first or
the last event of a file (the file names no head), tested below on Redis, whose ``audit:head`` and
``audit:trimmed`` anchor both ends.
"""

from __future__ import annotations

import copy
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis

from bot.audit.chain import Tamper
from bot.audit.records import dumps
from bot.cli import _parser
from bot.core.model import GENESIS_HASH, chain_hash
from tests.audit.conftest import cli

pytestmark = pytest.mark.redis

TAMPERINGS = 1000
FIELDS = ('actor', 'outcome', 'time', 'event', 'seq', 'prev_hash', 'hash', 'reason', 'email', 'detail', 'rule',
          'policy_version', 'garble')  # fmt: skip


def _hex(rng: random.Random) -> str:
    return f'{rng.getrandbits(256):064x}'


def _edit(record: dict[str, Any], field: str, rng: random.Random) -> dict[str, Any] | str:
    """The record with one field changed (never to the value it had), or the line garbled."""
    out = copy.deepcopy(record)
    request = out.get('request') or {}
    if field == 'garble':
        text = dumps(record)
        return text[: rng.randint(1, len(text) - 2)]
    if field in ('reason', 'email') and not request:
        field = 'actor'
    if field == 'actor':
        out['actor'] = 'U0MALLORY'
    elif field == 'outcome':
        out['outcome'] = 'approved' if out.get('outcome') != 'approved' else 'denied'
    elif field == 'time':
        out['time'] = out['time'] + rng.randint(1, 100_000)
    elif field == 'event':
        out['event'] = 'grant.revoked' if out['event'] != 'grant.revoked' else 'grant.active'
    elif field == 'seq':
        out['seq'] = out['seq'] + rng.choice([-1, 1, 7])
    elif field in ('prev_hash', 'hash'):
        out[field] = _hex(rng)
    elif field == 'reason':
        request['reason'] = 'nothing to see here'
    elif field == 'email':
        request['requester']['email'] = 'mallory@example.com'
    elif field == 'detail':
        out['detail'] = {'why': 'forged'}
    else:
        out[field] = f'forged-{out.get(field)}'
    return out


def tamper(records: list[dict[str, Any]], rng: random.Random) -> tuple[str, list[dict[str, Any] | str], Tamper, int]:
    """One random tampering: ``(what, the tampered lines, the kind verify must report, the seq it must name)``."""
    n = len(records)
    out: list[dict[str, Any] | str] = list(records)  # tamperings copy what they change
    what = rng.choice(('edit', 'delete', 'swap', 'insert', 'truncate'))
    if what == 'edit':
        k = rng.randint(1, n)
        field = rng.choice(FIELDS)
        out[k - 1] = _edit(records[k - 1], field, rng)
        return f'edit {field} of {k}', out, Tamper.CHANGED, k
    if what == 'delete':
        k = rng.randint(2, n - 1)
        del out[k - 1]
        return f'delete {k}', out, Tamper.REMOVED, k
    if what == 'swap':
        i = rng.randint(1, n - 1)
        j = rng.randint(i + 1, n)
        out[i - 1], out[j - 1] = out[j - 1], out[i - 1]
        return f'swap {i} and {j}', out, Tamper.REORDERED, i
    if what == 'insert':
        p = rng.randint(1, n)  # the forged event goes right before seq p
        forged = copy.deepcopy(rng.choice(records))
        forged['actor'], forged['time'] = 'U0MALLORY', records[p - 1]['time']
        forged['seq'] = rng.choice([p, p, rng.randint(1, n + 5)])
        forged['prev_hash'] = rng.choice([records[p - 2]['hash'] if p > 1 else GENESIS_HASH, _hex(rng)])
        forged['hash'] = chain_hash(forged, forged['prev_hash'])
        out.insert(p - 1, forged)
        return f'insert seq {forged["seq"]} before {p}', out, Tamper.INSERTED, p
    a = rng.randint(2, n - 2)
    b = rng.randint(a + 1, min(n - 1, a + 12))
    del out[a - 1 : b]
    return f'cut {a}-{b}', out, Tamper.REMOVED, a


def _write(path: Path, lines: list[dict[str, Any] | str], known: dict[int, str] | None = None) -> None:
    """The lines as a JSONL file (``known``: the JSON of the untouched records, by ``id``, to save time)."""
    known = known or {}
    text = (line if isinstance(line, str) else known.get(id(line)) or dumps(line) for line in lines)
    path.write_text(''.join(t + '\n' for t in text))


def test_a_thousand_tamperings_are_all_caught_with_the_right_seq(seeded, tmp_path, capsys):
    """1,000 random tamperings of a 54-event history: verify exits 1 naming the tampered seq and how, every time."""
    jit, _ = seeded
    records = jit.store.audit_events(1, 10_000)
    assert len(records) == 54
    path = tmp_path / 'audit.jsonl'
    _write(path, records)
    parser = _parser()
    verify = __import__('bot.audit_tools.verify', fromlist=['run'])
    assert verify.run(parser.parse_args(['audit', 'verify', '--file', str(path)])) == 0
    assert capsys.readouterr().out == f'54 events, chain intact, head {records[-1]["hash"]}\n'
    known = {id(r): dumps(r) for r in records}
    rng = random.Random(20261128)
    detected, right, kinds, wrong = 0, 0, Counter[str](), []
    for _ in range(TAMPERINGS):
        what, lines, kind, seq = tamper(records, rng)
        _write(path, lines, known)
        code = verify.run(parser.parse_args(['audit', 'verify', '--file', str(path)]))
        said = capsys.readouterr().out.strip()
        detected += code == 1
        kinds[what.split()[0]] += 1
        if code == 1 and said.startswith(f'seq {seq} {kind}:'):
            right += 1
        else:
            wrong.append(f'{what}: expected seq {seq} {kind}, verify said {said!r} (exit {code})')
    with capsys.disabled():
        print(f'\nAUDIT tamperings: {TAMPERINGS} ({dict(kinds)}), detected {detected}, right seq and kind {right}')
    assert not wrong, '\n'.join(wrong[:20])
    assert detected == right == TAMPERINGS


def _rebuild(r: redis.Redis, lines: list[dict[str, Any] | str]) -> None:
    """Rewrite the stream as someone with Redis access would: entry IDs by position (they must increase)."""
    pipe = r.pipeline()
    pipe.delete('jit:audit')
    for number, line in enumerate(lines, 1):
        pipe.xadd('jit:audit', {'event': line if isinstance(line, str) else dumps(line)}, id=f'{number}-1')
    pipe.execute()


def test_redis_tamperings_at_both_ends_are_caught_through_the_head(seeded, cli_env, capsys):
    """On Redis the head anchors the end: the last event deleted, rewritten or a forged one appended is caught too."""
    jit, _ = seeded
    r = jit.store.redis
    records = jit.store.audit_events(1, 10_000)
    n = len(records)
    assert cli('verify') == 0
    assert capsys.readouterr().out == f'{n} events, chain intact, head {records[-1]["hash"]}\n'
    forged = {**records[-1], 'seq': n + 1, 'actor': 'U0MALLORY', 'prev_hash': 'f' * 64}
    forged['hash'] = chain_hash(forged, forged['prev_hash'])
    rehashed = {**records[-1], 'actor': 'U0MALLORY'}
    rehashed['hash'] = chain_hash(rehashed, rehashed['prev_hash'])
    cases = [
        ('the last event deleted', records[:-1], Tamper.REMOVED, n),
        ('the first event deleted', records[1:], Tamper.REMOVED, 1),
        ('a forged event appended', [*records, forged], Tamper.INSERTED, n + 1),
        ('the last event rewritten with a new hash', [*records[:-1], rehashed], Tamper.CHANGED, n),
    ]
    rng = random.Random(7)
    for _ in range(40):  # and the file's tamperings, on the stream
        what, lines, kind, seq = tamper(records, rng)
        cases.append((what, lines, kind, seq))
    for what, lines, kind, seq in cases:
        _rebuild(r, lines)
        assert cli('verify') == 1, what
        said = capsys.readouterr().out
        assert said.startswith(f'seq {seq} {kind}:'), f'{what}: {said}'
    _rebuild(r, records)
    assert cli('verify') == 0


def test_a_trimmed_stream_verifies_from_the_first_event_present(seeded, cli_env, capsys):
    """After retention trimmed seqs 1-20 (recorded in ``audit:trimmed``), verify checks from seq 21 and says so."""
    jit, _ = seeded
    r = jit.store.redis
    records = jit.store.audit_events(1, 10_000)
    r.hset('jit:audit:trimmed', mapping={'seq': 20, 'hash': records[19]['hash']})
    r.xtrim('jit:audit', minid='21-0', approximate=False)
    assert cli('verify') == 0
    captured = capsys.readouterr()
    assert captured.out == f'{len(records) - 20} events from seq 21, chain intact, head {records[-1]["hash"]}\n'
    assert 'seqs 1-20 were trimmed' in captured.err
    r.xdel('jit:audit', '21-1')  # someone deletes the first event left
    assert cli('verify') == 1
    assert capsys.readouterr().out.startswith('seq 21 removed: seq 21 missing: seq 22 follows seq 20')
    r.delete('jit:audit')
    for record in records[20:]:
        r.xadd('jit:audit', {'event': dumps(record)}, id=f'{record["seq"]}-1')
    assert cli('verify') == 0
    capsys.readouterr()
    r.hset('jit:audit:trimmed', 'seq', 19)  # a trim mark that lies about where the stream starts
    assert cli('verify') == 1
    assert capsys.readouterr().out.startswith('seq 20 removed:')


def test_an_untrimmed_stream_missing_its_start_is_not_taken_for_a_trimmed_one(seeded, cli_env, capsys):
    """Without jit's trim mark, a stream that starts at seq 6 lost seqs 1-5 to someone else."""
    jit, _ = seeded
    jit.store.redis.xtrim('jit:audit', minid='6-0', approximate=False)
    assert cli('verify') == 1
    captured = capsys.readouterr()
    assert captured.out.startswith('seq 1 removed: seqs 1-5 missing')
    assert 'jit never trimmed this stream' in captured.err
