"""Policy decisions per second, and load time, for a large policy.

Prints a table. Run: ``python -m bench.decisions [RULES] [MEMBERS]`` (defaults 1,000 and 10,000).
"""

from __future__ import annotations

import sys
import time

from bot.core.model import Principal
from bot.core.policy import evaluate
from bot.core.policy_loader import build_policy


def make_policy_text(rules: int, members: int) -> str:
    lines = ['groups:']
    per_group = max(1, members // 100)
    for g in range(100):
        lines.append(f'  g{g}: [' + ', '.join(f'u{g}-{i}@example.com' for i in range(per_group)) + ']')
    lines += ['resources:']
    for r in range(rules):
        lines.append(f'  res{r}: {{provider: webhook, roles: [read, write]}}')
    lines.append('requests:')
    for r in range(rules):
        lines += [
            f'  - name: rule{r}',
            f'    resources: [res{r}]',
            f'    requesters: [group:g{r % 100}]',
            f'    approvers: [group:g{(r + 1) % 100}]',
            '    timeout: 2h',
        ]
    return '\n'.join(lines) + '\n'


def main() -> None:
    rules = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    members = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    text = make_policy_text(rules, members)
    started = time.perf_counter()
    policy = build_policy({'bench.yaml': text})
    load = time.perf_counter() - started
    who = Principal(slack_id='U0BENCH', email='u7-3@example.com')
    n = 20000 if rules <= 1000 else 2000
    started = time.perf_counter()
    for i in range(n):
        evaluate(policy, who, f'res{(i * 7) % rules}', 'read', 1800, reason='bench')
    per_second = n / (time.perf_counter() - started)
    print(
        f'| rules | members | load time | decisions/s (one core) |\n|---|---|---|---|\n'
        f'| {rules:,} | {members:,} | {load * 1000:,.0f} ms | {per_second:,.0f} |'
    )


if __name__ == '__main__':
    main()
