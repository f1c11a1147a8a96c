"""The load benchmark: real ``jit serve`` and ``jit worker`` processes, measured from outside, each figure beside a
baseline measured in the same run. Prints one Markdown table and the machine it ran on.

Run from the checkout: ``python -m bench.load [--quick] [--out FILE]`` (needs redis-server; starts one of its
own, the local Slack, the webhook target, and the jit processes, and stops them all). ``--quick`` is a small
smoke run (10 users, 100 grants). The full run takes about three minutes on two cores and stops itself
before eight: a part that fails or runs out of time shows ``n/a (why)`` and the rest goes on.

Everything is measured black-box, at the edges jit talks to:

- the Slack ack: the HTTP answer to a signed ``/jit request``, 50 users at once, five rounds, against a bare
  aiohttp app that only checks Slack's HMAC (same client, rounds interleaved so both see the same machine);
- approve to grant: 50 signed clicks at once, each click's sending to its grant call arriving at the webhook
  target, against empty RQ jobs put on ``jit worker``'s access queue (enqueue to start);
- revoke lateness: the first successful revoke call at the webhook target minus the ``expires_at`` jit stored,
  for grants filed through the pipeline API under an ``auto_approve`` rule with durations chosen so that they
  all end within about a second (filing is paced behind the grants, so each grant starts when it is filed);
- Redis bytes per active grant: ``MEMORY USAGE`` of every key, and ``used_memory``, before and after;
- Slack Web API calls per approved request, as the local Slack recorded them, from filing to the revoke;
- revokes lost and grants made twice, from the webhook target's record of every call.

Two jit installations run one after the other on databases of one Redis: the first is driven through Slack
(acks, clicks, calls), the second through the pipeline API (the revoke rows and memory), so the idle rows are
measured on an idle system. Each has a webhook target of its own (the second's reconciler would otherwise revoke

Where things are: :mod:`bench.load.run` (the parts in order, and ``main``), :mod:`bench.load.harness` (the run's
state and the processes it starts), one module per measurement (:mod:`~bench.load.acks`,
:mod:`~bench.load.approve`, :mod:`~bench.load.slack_calls`, :mod:`~bench.load.idle`, :mod:`~bench.load.burst`
with :mod:`~bench.load.filing`, :mod:`~bench.load.memory`), what they share (:mod:`~bench.load.common`,
:mod:`~bench.load.clients`, :mod:`~bench.load.observe`) and :mod:`bench.load.report` (the checks over the whole
run, the notes and the table).
"""
