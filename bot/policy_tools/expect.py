"""``jit policy test [DIR]``: run the expectation cases of ``DIR/tests/*.yaml`` against the policy in ``DIR``.

Output like pytest: one line per failing case with its ``file:line:column``, then ``N passed, M failed``.
Exit 1 when a case fails, the policy does not load, or a test file is malformed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.core.errors import PolicyConfigError
from bot.core.policy_expectations import run_cases
from bot.core.policy_loader import load_policy
from bot.policy_tools import provider_names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('directory', nargs='?', help='policy directory (default: $JIT_POLICY_DIR or policies/)')
    parser.add_argument('--tests', help='directory of expectation files (default: DIR/tests)')


def run(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.directory, providers=provider_names())
    except PolicyConfigError as exc:
        print('\n'.join(exc.problems))
        return 1
    tests = Path(args.tests) if args.tests else Path(args.directory) / 'tests'
    files = {str(p): p.read_text(encoding='utf-8') for p in sorted(tests.glob('*.y*ml'))}
    results, problems = run_cases(policy, files)
    for problem in problems:
        print(f'ERROR {problem}')
    failed = [r for r in results if r.failure]
    for result in failed:
        print(f'FAILED {result.where}: {result.title}: {result.failure}')
    if not files:
        print(f'no expectation files in {tests}')
    errors = f', {len(problems)} errors' if problems else ''
    print(f'{len(results) - len(failed)} passed, {len(failed)} failed{errors}')
    return 1 if failed or problems else 0
