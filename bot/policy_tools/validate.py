"""``jit policy validate [DIR]``: does the policy load, and what does lint warn about?

Problems (the policy does not load) print as ``file:line:column: message`` and exit 1. Lint
findings (``bot.core.policy_lint``) print as ``file:line:column: warning[code]: message``; they
are warnings, so the exit is 0 unless ``--strict`` (for CI) turns them into failures.

``--check-targets`` also asks every provider that has a ``check_target(settings=, params=)`` about each
role, against the target itself (a postgres role that may create objects, or become a role that creates
logins, can leave behind what a revoke cannot end). Lint stays pure; this part connects, with the
worker's environment for ``env:`` settings, and prints ``warning[target-...]`` lines the same way.
"""

from __future__ import annotations

import argparse
import sys

from bot.core.durations import DurationError, format_duration, parse_duration
from bot.core.errors import PolicyConfigError, ProviderError
from bot.core.policy import Policy
from bot.core.policy_lint import DEFAULT_MAX_DURATION, Finding, lint
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
    parser.add_argument('--check-targets', action='store_true',
                        help='also check each role against its target (postgres: roles that may create objects); '
                             'connects with the env: settings of this environment')  # fmt: skip


def run(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.directory, providers=provider_names())
    except PolicyConfigError as exc:
        for problem in exc.problems:
            print(problem)
        print(f'{len(exc.problems)} problem(s)', file=sys.stderr)
        return EXIT_PROBLEMS
    findings = lint(policy, max_duration=args.max_duration)
    if getattr(args, 'check_targets', False):
        findings += check_targets(policy)
    for finding in findings:
        print(finding)
    if findings and args.strict:
        print(f'{len(findings)} warning(s), and --strict makes warnings fail', file=sys.stderr)
        return EXIT_PROBLEMS
    print(f'ok: {len(policy.files)} file(s), {len(policy.resources)} resource(s), {len(policy.rules)} rule(s), '
          f'{len(findings)} warning(s), version {policy.version}')  # fmt: skip
    return EXIT_OK


def check_targets(policy: Policy) -> list[Finding]:
    """The warnings of every provider's ``check_target`` for every role; a target it cannot reach is one too."""
    from workers.providers.registry import ProviderRegistry

    registry = ProviderRegistry()
    findings: list[Finding] = []
    for resource in policy.resources.values():
        try:
            check = getattr(registry(resource.provider), 'check_target', None)
        except ProviderError:
            continue  # not installed here: the load above already said whether the name is known
        if check is None:
            continue
        for role in resource.roles.values():
            try:
                found = check(settings=dict(resource.settings), params=dict(role.params))
            except ProviderError as exc:
                found = [('target-unchecked', f'could not check the target: {exc.user_message}')]
            except Exception as exc:  # a provider bug is a warning, never a traceback
                found = [('target-unchecked', f'could not check the target: unexpected {type(exc).__name__}')]
            findings += [Finding(code, f'resource `{resource.name}` role `{role.name}`: {message}', resource.source)
                         for code, message in found]  # fmt: skip
    return findings
