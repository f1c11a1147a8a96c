"""``jit policy validate [DIR]``: does the policy load? Every problem as ``file:line:column: message``."""

from __future__ import annotations

import argparse
import sys

from bot.core.errors import PolicyConfigError
from bot.core.policy_loader import load_policy
from bot.policy_tools import provider_names

EXIT_OK, EXIT_PROBLEMS = 0, 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('directory', nargs='?', help='default: $JIT_POLICY_DIR or policies/')


def run(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.directory, providers=provider_names())
    except PolicyConfigError as exc:
        for problem in exc.problems:
            print(problem)
        print(f'{len(exc.problems)} problem(s)', file=sys.stderr)
        return EXIT_PROBLEMS
    print(f'ok: {len(policy.files)} file(s), {len(policy.resources)} resource(s), {len(policy.rules)} rule(s), '
          f'version {policy.version}')  # fmt: skip
    return EXIT_OK
