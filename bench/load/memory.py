"""The memory row: Redis bytes per active grant, by ``MEMORY USAGE`` of every key (and ``used_memory``, the
whole server's, noisy) before the one-worker burst and while all its grants are active."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from bench.load.harness import Bench

_ID = re.compile(r'r-[a-z2-9]{8}')
_HEX = re.compile(r'[0-9a-f]{16,}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}')


def key_memory(client: Any) -> tuple[int, Counter[str], int, int]:
    """(sum of MEMORY USAGE over every key of the database, the same by key shape, used_memory, stream entries)."""
    shapes: Counter[str] = Counter()
    entries = 0
    keys = [k.decode(errors='replace') if isinstance(k, bytes) else k for k in client.scan_iter(count=2000)]
    for start in range(0, len(keys), 500):
        batch = keys[start : start + 500]
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.memory_usage(key, samples=0)
            pipe.type(key)
        answers = pipe.execute()
        streams = []
        for key, size, kind in zip(batch, answers[0::2], answers[1::2], strict=True):
            shapes[_HEX.sub('<hex>', _ID.sub('<id>', key))] += size or 0
            if kind in (b'stream', 'stream'):
                streams.append(key)
        entries += sum(int(client.xlen(key)) for key in streams)
    return sum(shapes.values()), shapes, int(client.info('memory')['used_memory']), entries


def put_memory(bench: Bench, before: Any, after: Any, n: int, queued: int) -> None:
    """The row from two :func:`key_memory` readings ``n`` grants apart (``None``: not measured in time)."""
    if before is None or after is None:
        bench.put('memory', 'n/a (the grants were not all active in time to measure before they ended)')
        return
    keys = (after[0] - before[0]) / n
    used = (after[2] - before[2]) / n
    shapes = Counter({k: (after[1][k] - before[1].get(k, 0)) / n for k in after[1]})
    top = ', '.join(f'`{k}` {v:,.0f}' for k, v in shapes.most_common(6) if v > 0)
    value = f'{keys:,.0f} B by MEMORY USAGE of every key; {used:,.0f} B by used_memory (whole server, noisy)'
    if queued:
        value += f' ({queued} audit events not yet shown in Slack)'
    bench.put('memory', value, '', keys <= 2048)
    bench.note(f'memory per grant by key shape: {top}; stream entries per grant: {(after[3] - before[3]) / n:g}')
