"""How long the policy tools take on large policies: load, lint, diff (a policy against itself).

Prints a table. Run: ``python -m bench.policy_tools``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bench.decisions import make_policy_text
from bot.core.policy_diff import diff_policies
from bot.core.policy_lint import lint
from bot.core.policy_loader import build_policy


def timed(fn: Callable[..., object], *args: object) -> str:
    started = time.perf_counter()
    fn(*args)
    return f'{(time.perf_counter() - started) * 1000:,.0f} ms'


def main() -> None:
    print('| rules | members | load | lint | diff |\n|---|---|---|---|---|')
    for rules, members in ((100, 1000), (300, 3000), (1000, 10000)):
        text = make_policy_text(rules, members)
        policy = build_policy({'bench.yaml': text})
        row = [timed(build_policy, {'bench.yaml': text}), timed(lint, policy), timed(diff_policies, policy, policy)]
        print(f'| {rules:,} | {members:,} | ' + ' | '.join(row) + ' |')


if __name__ == '__main__':
    main()
