"""The idle row: how late a revoke is when nothing else happens, one grant at a time, each ending alone. Its
first grant's lateness is the burst rows' baseline."""

from __future__ import annotations

import statistics
import time

from bench.load.clients import Api
from bench.load.common import Skip, ms, wait_for
from bench.load.filing import expiries, file
from bench.load.harness import Bench


def idle(bench: Bench, api: Api) -> None:
    """One grant at a time, each ending alone: how late is a revoke when nothing else happens."""
    n = bench.scale.idle_grants
    duration = max(10, int(n * 0.5) + 3)
    bench.need(duration + n * 0.5 + 20)
    ids = []
    for k in range(n):
        ids.append(file(api, duration, f'bench idle {k}'))
        time.sleep(0.5)
    wait_for(lambda: all(i in bench.watch.grants for i in ids), 20, 0.1)
    expires = expiries(bench, ids)
    wait_for(lambda: all(i in bench.watch.revokes for i in ids), duration + 30, 0.2)
    bench.ended_ids.extend(ids)
    late = [bench.watch.revokes[i] - expires[i] for i in ids if i in bench.watch.revokes and i in expires]
    if not late:
        raise Skip('no grant was revoked in time to measure')
    missing = len(ids) - len(late)
    value = f'max {ms(max(late))} (median {ms(statistics.median(late))}, min {ms(min(late))})'
    if missing:
        value += f'; {missing} not measured'
    bench.put('idle', value, f'the first grant alone: {ms(late[0])}', max(late) <= 0.1 and not missing)
    bench.idle_first = late[0]
