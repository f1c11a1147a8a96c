"""The Slack calls row: the Web API calls the local Slack recorded per approved request, from alex filing it
through sam's approval to the end of its 10-second grant, counted once the notifications have settled."""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

from bench.load.common import ALEX, SAM, Skip, wait_for
from bench.load.harness import Bench


def slack_calls(bench: Bench) -> None:
    """alex files, sam approves, the grant runs 10 s and ends: the local Slack's calls, per request."""
    bench.need(50)
    left = bench.drain_notify(1, 60)
    wait_for(lambda: _quiet(bench, 1.5), 30, 0.2)
    if left:
        bench.note(f'calls: {left} audit events were not yet shown in Slack at the start (their calls may be counted)')
    first = len(bench.slack.calls)
    ids = []
    for k in range(bench.scale.calls_requests):
        reply = bench.slack.driver.slash(ALEX, f'request demo-app read 10s bench calls {k}')
        if reply.status != 200 or 'Filed' not in (reply.text or ''):
            raise Skip(f'alex could not file: {reply.status} {reply.body[:120]!r}')
        ids.append((reply.text or '').split('`')[1])
    dm = bench.slack.workspace.dm_channel_id(SAM)
    for request_id in ids:
        copy = bench.slack.workspace.wait_for_message(
            lambda m, r=request_id: m.channel == dm and r in m.content and 'jit.approve' in m.action_ids,
            timeout=30)  # fmt: skip
        bench.slack.driver.click(SAM, copy, 'jit.approve')
    if not wait_for(lambda: all(i in bench.watch.revokes for i in ids), 60, 0.2):
        raise Skip('the grants were not revoked within 60 s')
    bench.ended_ids.extend(ids)
    bench.drain_notify(1, 30)
    wait_for(lambda: _quiet(bench, 2.0), 30, 0.2)
    calls = bench.slack.calls[first:]
    methods = Counter(c.method for c in calls)
    per = len(calls) / len(ids)
    breakdown = ', '.join(f'{m} {n / len(ids):g}' for m, n in methods.most_common())
    bench.put('calls', f'{per:g} ({breakdown})', '', per <= 8)

    def where(call: Any) -> str:
        channel = str((call.params or {}).get('channel') or '')
        return 'DM' if channel.startswith('D') else '#audit' if channel == 'C0AUDIT' else channel or '-'

    detail = Counter(f'{c.method} {where(c)}' for c in calls)
    for call in calls:  # the sequence, for reading the row (stderr only)
        text = str((call.params or {}).get('text') or '')[:70].replace('\n', ' ')
        print(f'[bench] call {call.method} {where(call)} {text!r}', file=sys.stderr)
    bench.note('calls per approved request by method and channel: '
               + ', '.join(f'{k} {v / len(ids):g}' for k, v in detail.most_common()))  # fmt: skip


def _quiet(bench: Bench, seconds: float) -> bool:
    """The local Slack has had no call for ``seconds``."""
    calls = bench.slack.calls
    return not calls or time.time() - calls[-1].time >= seconds
