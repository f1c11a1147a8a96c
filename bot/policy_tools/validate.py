"""``jit policy validate [DIR]``: does the policy load, and what does lint warn about?

Problems (the policy does not load) print as ``file:line:column: message`` and exit 1. Lint
findings (``bot.core.policy_lint``) print as ``file:line:column: warning[code]: message``; they
are warnings, so the exit is 0 unless ``--strict`` (for CI) turns them into failures.
"""

from __future__ import annotations

import argparse
import sys

from bot.core.durations import DurationError, format_duration, parse_duration
from bot.core.errors import PolicyConfigError
from bot.core.policy_lint import DEFAULT_MAX_DURATION, lint
from bot.core.policy_loader import load_policy
from bot.policy_tools import provider_names

EXIT_OK, EXIT_PROBLEMS = 0, 1


def _duration(text: str) -> int:
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('directory', nargs='?', help='default: $JIT_POLICY_DIR or policies/')
    parser.add_argument('--strict', action='store_true', help='lint warnings fail too (exit 1)')
    cap = format_duration(DEFAULT_MAX_DURATION)
    parser.add_argument('--max-duration', type=_duration, default=DEFAULT_MAX_DURATION, metavar='DURATION',
                        help=f'warn about rules that allow longer grants (default {cap})')  # fmt: skip


def run(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.directory, providers=provider_names())
    except PolicyConfigError as exc:
        for problem in exc.problems:
            print(problem)
        print(f'{len(exc.problems)} problem(s)', file=sys.stderr)
        return EXIT_PROBLEMS
    findings = lint(policy, max_duration=args.max_duration)
    for finding in findings:
        print(finding)
    if findings and args.strict:
        print(f'{len(findings)} warning(s), and --strict makes warnings fail', file=sys.stderr)
        return EXIT_PROBLEMS
    print(f'ok: {len(policy.files)} file(s), {len(policy.resources)} resource(s), {len(policy.rules)} rule(s), '
          f'{len(findings)} warning(s), version {policy.version}')  # fmt: skip
    return EXIT_OK
