"""``jit policy diff``: directories and git revisions, text and Markdown, and the exit codes CI relies on."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from bot.policy_tools import diff

OLD = """\
groups:
  devops: [alex@example.com, dana@example.com]
  leads: [sam@example.com]
resources:
  db:
    provider: webhook
    roles: [read, write]
requests:
  - name: db-read
    resources: [db]
    roles: [read]
    requesters: [group:devops]
    approvers: [group:leads]
    timeout: 2h
"""
WIDER = OLD.replace('[alex@example.com, dana@example.com]', '[alex@example.com, dana@example.com, bob@example.com]')
NARROWER = OLD.replace('timeout: 2h', 'timeout: 1h')
BOTH = WIDER.replace('timeout: 2h', 'timeout: 1h')
BROKEN = OLD.replace('    approvers: [group:leads]\n', '    approvers: [group:nobody]\n')


def jit_diff(capsys, *argv):
    """Run the tool as ``jit policy diff ARGV`` would (the CLI also sets ``directory``); return (code, stdout)."""
    parser = argparse.ArgumentParser()
    diff.add_arguments(parser)
    args = parser.parse_args(argv)
    args.directory = 'policies'
    code = diff.run(args)
    return code, capsys.readouterr().out


def policy_dir(root, name, text):
    """A policy directory ``root/name`` with one file ``main.yaml``; returns its path as a string."""
    (root / name).mkdir()
    (root / name / 'main.yaml').write_text(text)
    return str(root / name)


@pytest.mark.parametrize(
    ('new', 'code', 'line'),
    [
        (OLD, 0, 'no change to effective access'),
        (NARROWER, 0, '- db read may be granted for up to 1h instead of 2h (rule db-read)'),
        (WIDER, 3, '+ bob@example.com may now request db read (rule db-read)'),
    ],
    ids=['same', 'narrower', 'wider'],
)
def test_directories_exit_3_only_when_access_widens(tmp_path, capsys, new, code, line):
    """0 for no change or narrowing, 3 when anything widens access; each change is one line."""
    got, out = jit_diff(capsys, policy_dir(tmp_path, 'old', OLD), policy_dir(tmp_path, 'new', new))
    assert got == code
    assert line in out.splitlines()


def test_a_side_that_does_not_load_exits_1_with_its_problems(tmp_path, capsys):
    """The problems print as file:line:column, naming the side."""
    new = policy_dir(tmp_path, 'new', BROKEN)
    code, out = jit_diff(capsys, policy_dir(tmp_path, 'old', OLD), new)
    assert code == 1
    assert f'{new}: the policy does not load:' in out
    assert f'{new}/main.yaml:13:17:' in out and 'unknown group `nobody`' in out


def test_a_missing_directory_exits_1_and_a_missing_argument_2(tmp_path, capsys):
    """Nothing to compare is a failure, not a silent success; a side not named is a usage error."""
    assert jit_diff(capsys, policy_dir(tmp_path, 'old', OLD), str(tmp_path / 'nowhere'))[0] == 1
    code, out = jit_diff(capsys, str(tmp_path / 'old'))
    assert code == 2 and 'OLD_DIR and NEW_DIR' in out


def test_markdown_has_a_heading_and_both_sections(tmp_path, capsys):
    """The pull-request comment: a heading, the widening section with its warning, then the narrowing one."""
    code, out = jit_diff(capsys, policy_dir(tmp_path, 'old', OLD), policy_dir(tmp_path, 'new', BOTH),
                         '--format', 'markdown')  # fmt: skip
    assert code == 3
    assert out.startswith('### Policy diff: ')
    widens, narrows = out.index('#### ⚠️ Widens access (1)'), out.index('#### Narrows access (1)')
    assert widens < out.index('```diff\n+ bob@example.com may now request db read (rule db-read)\n```') < narrows
    assert narrows < out.index('```diff\n- db read may be granted for up to 1h instead of 2h (rule db-read)\n```')


def test_markdown_says_when_nothing_changes(tmp_path, capsys):
    """No sections, one sentence."""
    code, out = jit_diff(capsys, policy_dir(tmp_path, 'old', OLD), policy_dir(tmp_path, 'new', OLD),
                         '--format', 'markdown')  # fmt: skip
    assert code == 0
    assert 'No change to effective access.' in out and 'Widens' not in out and 'Narrows' not in out


def git(repo, *argv):
    """Run git in ``repo`` with a throwaway identity; return its output."""
    config = ['-c', 'user.name=jit tests', '-c', 'user.email=jit@example.com', '-c', 'commit.gpgsign=false']
    return subprocess.run(['git', *config, *argv], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git repository with two commits of ``policies/``: OLD, then WIDER; the working tree is the tool's cwd."""
    root = tmp_path / 'repo'
    (root / 'policies' / 'tests').mkdir(parents=True)
    git(root, 'init', '-q')
    (root / 'policies' / 'main.yaml').write_text(OLD)
    (root / 'policies' / 'tests' / 'cases.yaml').write_text('cases: [not a policy]\n')
    git(root, 'add', '-A')
    git(root, 'commit', '-q', '-m', 'old')
    (root / 'policies' / 'main.yaml').write_text(WIDER)
    git(root, 'commit', '-q', '-am', 'wider')
    monkeypatch.chdir(root)
    return root


def test_git_compares_two_revisions(repo, capsys):
    """BASE..HEAD reads both sides from git (policies/tests/ is not a policy file)."""
    code, out = jit_diff(capsys, '--git', 'HEAD~1..HEAD')
    assert code == 3
    assert '+ bob@example.com may now request db read (rule db-read)' in out.splitlines()


def test_git_base_alone_compares_with_the_working_tree(repo, capsys):
    """BASE alone is BASE against the files on disk, uncommitted edits included."""
    (repo / 'policies' / 'main.yaml').write_text(NARROWER)
    code, out = jit_diff(capsys, '--git', 'HEAD', '--format', 'markdown')
    assert code == 0
    assert out.startswith('### Policy diff: HEAD vs the working tree')
    assert '- bob@example.com may no longer request db read (was rule db-read)' in out


def test_git_with_another_directory(repo, capsys):
    """--dir names the policy directory inside the repository."""
    (repo / 'policies').rename(repo / 'access')
    git(repo, 'add', '-A')
    git(repo, 'commit', '-q', '-m', 'moved')
    code, out = jit_diff(capsys, '--git', 'HEAD~2..HEAD', '--dir', 'access')
    assert code == 1
    assert 'no policy files' in out
    assert jit_diff(capsys, '--git', 'HEAD~1..HEAD', '--dir', 'access')[0] == 1
    assert jit_diff(capsys, '--git', 'HEAD', '--dir', 'access')[0] == 0


def test_git_unknown_revision_or_bad_file_exits_1(repo, capsys):
    """A revision git does not know, or a revision whose policy does not load, is a failure."""
    code, out = jit_diff(capsys, '--git', 'nosuchrev..HEAD')
    assert code == 1 and 'nosuchrev' in out
    (repo / 'policies' / 'main.yaml').write_text(BROKEN)
    git(repo, 'commit', '-q', '-am', 'broken')
    code, out = jit_diff(capsys, '--git', 'HEAD~1..HEAD')
    assert code == 1
    assert 'HEAD:policies/main.yaml:13:17:' in out


def test_git_and_directories_together_is_refused(repo, capsys):
    """One way of naming the two sides at a time."""
    code, out = jit_diff(capsys, 'a', 'b', '--git', 'HEAD')
    assert code == 2 and 'not both' in out


def jit(*argv: str) -> subprocess.CompletedProcess[str]:
    """``jit ARGV`` as a pipeline runs it: a process of its own, its exit code as the shell sees it."""
    return subprocess.run([sys.executable, '-m', 'bot', *argv], capture_output=True, text=True, timeout=120)


def test_a_widening_and_a_mistake_in_the_command_line_exit_differently(tmp_path):
    """CI labels exit 3 a widening: a typo in an option (argparse) or a side not named is 2, never 3."""
    old, new = policy_dir(tmp_path, 'old', OLD), policy_dir(tmp_path, 'new', WIDER)
    widened = jit('policy', 'diff', old, new)
    assert widened.returncode == 3 and '+ bob@example.com may now request db read (rule db-read)' in widened.stdout
    typo = jit('policy', 'diff', old, new, '--fromat', 'markdown')
    assert typo.returncode == 2 and 'unrecognized arguments: --fromat' in typo.stderr
    assert jit('policy', 'diff', old).returncode == 2
    assert jit('policy', 'dif', old, new).returncode == 2
    assert jit('policy', 'diff', old, old).returncode == 0


def test_the_readme_has_one_exit_code_table_naming_every_command():
    """One table, a row for each of jit's commands (the CLI's own list of them, so a new one needs a row)."""
    from bot.cli import AUDIT_TOOLS, POLICY_TOOLS, _parser

    readme = (Path(__file__).parent.parent / 'README.md').read_text()
    assert readme.count('## Exit codes') == 1
    table = readme.split('## Exit codes', 1)[1].split('\n## ', 1)[0]
    rows = [line for line in table.splitlines() if line.startswith('| `jit')]
    named = ' '.join(row.split(' | ')[0] for row in rows)
    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    for command in set(commands) - {'policy', 'audit'}:
        assert f'`jit {command}' in named, command
    for tool in POLICY_TOOLS:
        assert f'`jit policy {tool}`' in named, tool
    for tool in AUDIT_TOOLS:
        assert f'`jit audit {tool}' in named or f'`{tool}`' in named, tool
