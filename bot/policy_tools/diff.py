"""``jit policy diff OLD_DIR NEW_DIR`` or ``jit policy diff --git BASE[..HEAD]``: what a change does to access.

Command-line layer: reads the two policies (from directories, or from git revisions with ``git
ls-tree`` and ``git show``), hands them to the pure :func:`bot.core.policy_diff.diff_policies` and
prints the changes as text or as Markdown for a pull-request comment. The exit code is for CI:
0 when nothing widens access, 3 when something does (ask for a security review), 1 when either
side does not load (its ``file:line:column`` problems are printed) or cannot be read, 2 when the
command line is wrong (as every ``jit`` command, argparse's own errors included). Widening was 2
until it was seen to share the code of a typo in the command line, which CI then read as a widening.
"""

from __future__ import annotations

import argparse
import html
import subprocess
from collections.abc import Callable, Collection
from pathlib import PurePosixPath

from bot.core.characters import visible
from bot.core.errors import PolicyConfigError
from bot.core.policy import Policy
from bot.core.policy_diff import Change, diff_policies
from bot.core.policy_loader import build_policy, read_policy_dir
from bot.policy_tools import provider_names

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_WIDENS = 0, 1, 2, 3
WARNING = '⚠️'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('old', nargs='?', metavar='OLD_DIR', help='the policy directory before the change')
    parser.add_argument('new', nargs='?', metavar='NEW_DIR', help='the policy directory after the change')
    parser.add_argument('--git', metavar='BASE[..HEAD]', help='compare git revisions instead: BASE..HEAD, or BASE '
                        'alone (or BASE..) against the working tree')  # fmt: skip
    parser.add_argument('--dir', default='policies', help='with --git: the policy directory (default: policies)')
    parser.add_argument('--format', default='text', choices=('text', 'markdown'),
                        help='markdown fits a pull-request comment (default: text)')  # fmt: skip


class _Unreadable(Exception):
    """A side cannot be read (no such revision, not a git repository): the message says why."""


def run(args: argparse.Namespace) -> int:
    """Compare the two policies and print the changes; the exit code says whether access widens.

    Args:
        args: ``old``, ``new``, ``git``, ``dir`` and ``format`` as :func:`add_arguments` defines them
            (``args.directory``, which the CLI may set, is not used).

    Returns:
        0 when nothing widens access, 3 when something does, 1 when a side does not load, 2 when the
        sides are not named one way or the other.
    """
    if args.git is not None and (args.old or args.new):
        print('jit: give either OLD_DIR NEW_DIR or --git BASE[..HEAD], not both')
        return EXIT_USAGE
    if args.git is None and not (args.old and args.new):
        print('jit: give OLD_DIR and NEW_DIR, or --git BASE[..HEAD]')
        return EXIT_USAGE
    providers = provider_names()
    sides: list[tuple[str, Callable[[], dict[str, str]]]]
    if args.git is not None:
        base, _, head = str(args.git).partition('..')
        sides = [
            (base, lambda: _git_texts(base, args.dir)),
            (head or 'working tree', lambda: _git_texts(head, args.dir) if head else read_policy_dir(args.dir)),
        ]
        title = f'{base}..{head}' if head else f'{base} vs the working tree'
    else:
        sides = [(args.old, lambda: read_policy_dir(args.old)), (args.new, lambda: read_policy_dir(args.new))]
        title = f'{args.old} → {args.new}'
    policies: list[Policy] = []
    failed = False
    for label, read in sides:
        try:
            policies.append(build_policy(read(), providers=providers))
        except (PolicyConfigError, _Unreadable) as exc:
            failed = True
            problems = exc.problems if isinstance(exc, PolicyConfigError) else [str(exc)]
            print(f'{label}: the policy does not load:')
            print('\n'.join(problems))
    if failed:
        return EXIT_PROBLEMS
    changes = diff_policies(policies[0], policies[1])
    print(markdown(changes, title) if args.format == 'markdown' else text(changes))
    return EXIT_WIDENS if any(c.widens for c in changes) else EXIT_OK


def text(changes: Collection[Change]) -> str:
    """The changes as plain lines: ``+`` widens, ``-`` narrows, then a count."""
    if not changes:
        return 'no change to effective access'
    lines = [_line(c) for c in changes]
    widening = sum(c.widens for c in changes)
    lines.append(f'{len(changes)} change(s), {widening} widen(s) access')
    return '\n'.join(lines)


def markdown(changes: Collection[Change], title: str) -> str:
    """The changes as a pull-request comment: a heading, what widens access, then what narrows it.

    The changes are lines of a ``diff`` code block, not Markdown: they quote the policy's names (a rule's name is
    any text), and in Markdown a name such as ``x <!--`` would hide every line after it from the reviewer (an
    unclosed HTML comment), ``[x](https://…)`` would be a link and ``@org/team`` a mention. Nothing inside a
    fenced block is read, and no line of it can close the fence: each starts with ``+`` or ``-`` and is one line
    (:func:`_line`).
    """
    out = [f'### Policy diff: {html.escape(visible(title), quote=False)}', '']
    if not changes:
        return '\n'.join([*out, 'No change to effective access.'])
    widens = [c for c in changes if c.widens]
    narrows = [c for c in changes if not c.widens]
    if widens:
        out += [f'#### {WARNING} Widens access ({len(widens)})', '', 'These changes need a security review.', '']
        out += ['```diff', *(_line(c) for c in widens), '```', '']
    if narrows:
        out += [f'#### Narrows access ({len(narrows)})', '']
        out += ['```diff', *(_line(c) for c in narrows), '```', '']
    return '\n'.join(out).rstrip('\n')


def _line(change: Change) -> str:
    """``+`` widens, ``-`` narrows, then the message on one line with every character shown: a name with a line
    break or ``ESC [2K`` in it must not start a line of its own or erase one (a policy refuses both; this is for
    the diff of a policy that did not load as far as that)."""
    return f'{"+" if change.widens else "-"} {visible(change.message)}'


def _git(*argv: str) -> str:
    done = subprocess.run(['git', *argv], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise _Unreadable(f'git {" ".join(argv)}: {done.stderr.strip() or f"exit {done.returncode}"}')
    return done.stdout


def _git_texts(rev: str, directory: str) -> dict[str, str]:
    """The policy files under ``directory`` at ``rev`` (not ``tests/``), keyed ``REV:path`` for error messages."""
    root = PurePosixPath(directory)
    texts: dict[str, str] = {}
    for name in _git('ls-tree', '-r', '--name-only', rev, '--', directory).splitlines():
        path = PurePosixPath(name)
        inside = path.relative_to(root).parts[:-1] if path.is_relative_to(root) else path.parts[:-1]
        if path.suffix in ('.yaml', '.yml') and 'tests' not in inside:
            texts[f'{rev}:{name}'] = _git('show', f'{rev}:./{name}')
    return texts
