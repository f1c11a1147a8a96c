"""A policy's text shows as what it is, wherever jit prints it: in ``jit policy validate`` and ``diff`` output on
a terminal, in a CI log, in the Markdown comment a pull request gets.

A policy pull request is written by whoever opens it. A rule named ``"x\\e[2K"`` would erase its own line from
the terminal; a name with a line break would start a line of its own (``::error::`` is a GitHub Actions
command); ``U+202E`` shows a reviewer other text than the file holds; and in Markdown, ``<!--`` hides every
line after it from the comment, including the line that grants a backdoor. So controls (but tabs and line
breaks) and invisible characters are refused in every value, keys and rule names are one line, every problem
is printed on one line with every character shown, and the diff's changes are lines of a ``diff`` block.
"""

import argparse

import pytest

from bot.core.errors import PolicyConfigError
from bot.core.policy_loader import build_policy
from bot.policy_tools import diff

HEAD = """\
groups:
  devops: [alex@example.com]
resources:
  db: {provider: webhook, roles: [read, write]}
requests:
"""
RULE = """\
  - name: db-read
    resources: [db]
    roles: [read]
    requesters: [group:devops]
    approvers: [sam@example.com]
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(PolicyConfigError) as refused:
        build_policy({'p.yaml': text})
    return refused.value.problems


@pytest.mark.parametrize(
    ('written', 'named'),
    [
        ('"db-read\\e[2K\\e[8m"', 'the control character \\x1b'),
        ('"db\\a"', 'the control character \\x07'),
        ('"admin\\u202Etxt.read"', 'the invisible character \\u202e'),
        ('"db\\u200Bread"', 'the invisible character \\u200b'),
        ('"db\\x85read"', 'the control character \\x85'),
    ],
)
def test_a_value_that_holds_an_acting_character_is_refused_where_it_is(written, named):
    text = HEAD + RULE.replace('name: db-read', f'name: {written}')
    problems = problems_of(text)
    assert problems == [f'p.yaml:6:11: text holds {named}, which shows as something else or nothing (in a '
                        'terminal, a CI log, a review): write it as plain text'], problems  # fmt: skip


def test_a_rule_name_and_a_key_are_one_line():
    problems = problems_of(HEAD + RULE.replace('name: db-read', 'name: "tidy-up\\n\\n<!--"'))
    assert problems == ['p.yaml:6:11: `name` is one line of text: the name the rule is known by'], problems
    problems = problems_of(HEAD.replace('  devops:', '  "dev\\nops":') + RULE.replace('group:devops', 'alex@x.io'))
    assert problems == ['p.yaml:2:3: a key is a name on one line; this one holds the control character \\x0a']


def test_a_problem_quoting_what_the_file_says_is_one_line_with_every_character_shown():
    problems = problems_of(HEAD + RULE.replace('resources: [db]', 'resources: ["nope\\n::error::forged"]'))
    assert len(problems) == 1 and '\n' not in problems[0] and '\\x0a::error::forged' in problems[0], problems
    with pytest.raises(PolicyConfigError) as refused:
        build_policy({'p.yaml': HEAD + RULE.replace('resources: [db]', 'resources: ["nope\\n::error::forged"]')})
    assert not any(line.startswith('::') for line in str(refused.value).splitlines())


def test_tabs_and_line_breaks_stay_where_text_may_have_them():
    policy = build_policy({'p.yaml': HEAD + RULE + '    description: "first line\\n\\tthen an indented one"\n'})
    assert policy.rules[0].name == 'db-read'


def test_the_markdown_diff_shows_every_change_whatever_a_rule_is_named(tmp_path, capsys):
    """The name that hid the backdoor's line from the comment (an unclosed ``<!--``), with a link and a mention:
    both changes are lines of the diff block, and nothing the policy wrote is Markdown outside it."""
    sly = 'tidy-up <!-- [all fine](https://evil.example) @org/security'
    old, new = tmp_path / 'old', tmp_path / 'new'
    old.mkdir(), new.mkdir()
    (old / 'p.yaml').write_text(HEAD + RULE)
    (new / 'p.yaml').write_text(HEAD + RULE + RULE.replace('db-read', sly).replace('roles: [read]', 'roles: [write]')
                                + RULE.replace('db-read', 'backdoor').replace('roles: [read]', 'roles: [write]')
                                .replace('group:devops', 'eve@example.com'))  # fmt: skip
    parser = argparse.ArgumentParser()
    diff.add_arguments(parser)
    args = parser.parse_args([str(old), str(new), '--format', 'markdown'])
    args.directory = 'policies'
    assert diff.run(args) == 3
    out = capsys.readouterr().out
    block = out[out.index('```diff\n') : out.index('\n```', out.index('```diff\n'))]
    assert f'+ alex@example.com may now request db write (rule {sly})' in block
    assert '+ eve@example.com may now request db write (rule backdoor)' in block
    outside = out.replace(block, '')
    assert '<!--' not in outside and 'evil.example' not in outside and '@org' not in outside
