"""``jit policy explain USER RESOURCE [ROLE] [DURATION]``: which rule decides, and why, in words."""

from __future__ import annotations

import argparse

from bot.core.durations import DurationError, looks_like_duration, parse_duration
from bot.core.errors import PolicyConfigError
from bot.core.policy_expectations import principal_for
from bot.core.policy_explain import explain
from bot.core.policy_loader import load_policy
from bot.policy_tools import provider_names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('user', help='an email, a Slack user ID, or pipeline:NAME')
    parser.add_argument('resource')
    parser.add_argument('rest', nargs='*', metavar='ROLE DURATION', help='the role (optional for one-role resources), '
                        'then the duration (default: the rule\'s default_duration)')  # fmt: skip
    parser.add_argument('--dir', dest='directory', help='policy directory (default: $JIT_POLICY_DIR or policies/)')
    parser.add_argument('--trigger', default='slack', choices=('slack', 'pipeline'))


def run(args: argparse.Namespace) -> int:
    rest = list(args.rest)
    role = rest.pop(0) if rest and not looks_like_duration(rest[0]) else None
    try:
        duration = parse_duration(rest.pop(0)) if rest else None
    except DurationError as exc:
        print(f'jit: {exc}')
        return 2
    if rest:
        print(f'jit: unexpected {" ".join(rest)!r} (usage: explain USER RESOURCE [ROLE] [DURATION])')
        return 2
    try:
        policy = load_policy(args.directory, providers=provider_names())
    except PolicyConfigError as exc:
        print('\n'.join(exc.problems))
        return 1
    print('\n'.join(explain(policy, principal_for(args.user), args.resource, role, duration, trigger=args.trigger)))
    return 0
