"""Expectation tests (`jit policy test`): cases pass, fail with file:line:column, or are reported malformed."""

import subprocess
import sys

import pytest

from bot.core.policy_expectations import run_cases
from tests.core.policy_fixtures import policy

GOOD = """\
- as: alex@example.com
  request: prod-db read 30m
  reason: debugging INC-4711
  expect: needs_approval
  rule: prod-read
  approvers: [sam@example.com, group:security]
  approvals: 1
- as: sam@example.com
  request: prod-db write
  expect: needs_approval
  approvals: 3
- as: U0SEC
  request: prod-db write
  expect: denied
- as: sam@example.com
  request: demo
  expect: auto_approved
- as: pipeline:deploy-main
  request: deploy-hook deploy
  trigger: pipeline
  context: {event: pr_merge, branch: production}
  expect: auto_approved
- as: eve@example.com
  request: prod-db read 30m INC-1
  expect: denied
"""


def test_matching_cases_pass():
    """Approvers compare as people (an email or the group holding it are the same), not as text.

    A Slack ID alone matches only rules that name that ID (U0SEC is in security, not in oncall).
    """
    results, problems = run_cases(policy(), {'tests/a.yaml': GOOD})
    assert problems == []
    assert [r.failure for r in results] == [None] * 6


@pytest.mark.parametrize(('case', 'words'), [
    ('- as: alex@example.com\n  request: prod-db read 30m INC-1\n  expect: auto_approved\n',
     'expected auto_approved, got needs_approval'),
    ('- as: alex@example.com\n  request: prod-db read 30m INC-1\n  expect: needs_approval\n  rule: prod-write\n',
     'expected rule `prod-write`, got `prod-read`'),
    ('- as: alex@example.com\n  request: prod-db read 30m INC-1\n  expect: needs_approval\n'
     '  approvers: [group:leads]\n',
     'approvers differ: also U0SEC, sec@example.com; missing nobody'),
    ('- as: alex@example.com\n  request: prod-db read 30m INC-1\n  expect: needs_approval\n  approvals: 2\n',
     'expected 2 approval(s), the rule needs 1'),
])  # fmt: skip
def test_failing_case_says_what_differs(case, words):
    """A failure names the case's position and what differed."""
    results, _ = run_cases(policy(), {'tests/b.yaml': '# header\n' + case})
    assert len(results) == 1
    assert results[0].where == 'tests/b.yaml:2:3'
    assert words in results[0].failure


@pytest.mark.parametrize(('text', 'words'), [
    ('- as: alex@example.com\n  request: demo\n', 'missing expect'),
    ('- as: alex@example.com\n  request: demo\n  expect: maybe\n', '`expect` must be one of'),
    ('- as: alex@example.com\n  request: demo\n  expect: denied\n  colour: red\n', 'unknown key(s) colour'),
    ('as: alex\n', 'a list of cases'),
    ('- [1, 2\n', 'YAML syntax error'),
])  # fmt: skip
def test_malformed_files_are_errors_not_passes(text, words):
    """A broken test file is an error, never a silently passing or skipped case."""
    results, problems = run_cases(policy(), {'tests/c.yaml': text})
    assert results == []
    assert len(problems) == 1 and words in problems[0] and problems[0].startswith('tests/c.yaml:')


def test_cli_prints_like_pytest(tmp_path):
    """`jit policy test DIR`: failures with file:line:column, then 'N passed, M failed'; exit 1 on failure."""
    (tmp_path / 'tests').mkdir()
    (tmp_path / 'p.yaml').write_text('resources:\n  demo: {provider: webhook, roles: [read]}\n'
                                     'requests:\n  - name: all\n    auto_approve: true\n')  # fmt: skip
    (tmp_path / 'tests' / 'x.yaml').write_text('- as: a@x.com\n  request: demo\n  expect: auto_approved\n'
                                               '- as: a@x.com\n  request: demo\n  expect: denied\n')  # fmt: skip
    out = subprocess.run([sys.executable, '-m', 'bot', 'policy', 'test', str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 1
    assert (
        f'FAILED {tmp_path}/tests/x.yaml:4:3: a@x.com requests demo: expected denied, got auto_approved' in out.stdout
    )
    assert out.stdout.strip().endswith('1 passed, 1 failed')
    shipped = subprocess.run(
        [sys.executable, '-m', 'bot', 'policy', 'test', 'policies'], capture_output=True, text=True
    )
    assert shipped.returncode == 0 and shipped.stdout.strip().endswith('0 failed'), shipped.stdout
