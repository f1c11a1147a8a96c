"""Loading a policy is bounded in time and memory, and any failure is a ``file:line:col`` problem.

Alias bombs, self-referencing aliases, deep nesting, huge numbers, values YAML cannot construct, keys that
are not strings, files that are not text, too large or not files at all: each is one problem naming the file
(and the line and column where it can), found quickly, with little memory, never a traceback.
"""

from __future__ import annotations

import os
import re
import time
import tracemalloc

import pytest

from bot.core.errors import PolicyConfigError
from bot.core.policy_loader import MAX_FILE_BYTES, MAX_FILES, MAX_TOTAL_BYTES, build_policy, read_policy_dir

GOOD = """\
resources:
  db: {provider: webhook, roles: [read]}
requests:
  - name: r
    approvers: [U0SAM]
"""
#: The classic "billion laughs": nine levels of nine aliases each, 368 bytes that expand to 9**9 items.
BOMB = """\
a: &a [x,x,x,x,x,x,x,x,x]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""
WHERE = re.compile(r'^p\.yaml:\d+:\d+: ')


def problems_of(text: str, name: str = 'p.yaml') -> list[str]:
    with pytest.raises(PolicyConfigError) as info:
        build_policy({name: text})
    return info.value.problems


def measured(load):
    """Run ``load``; return (its problems, CPU seconds it took, peak bytes allocated meanwhile).

    CPU time of this process, not the wall clock: what a bomb costs is work, and a machine busy with other
    processes (the other test workers) stretches the wall clock several times over (10.03 s for 2.5 s of work).
    """
    tracemalloc.start()
    started = time.process_time()
    try:
        with pytest.raises(PolicyConfigError) as info:
            load()
        return info.value.problems, time.process_time() - started, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_alias_bomb_is_refused_quickly_with_little_memory():
    """The 368-byte bomb that took gigabytes: one problem at the first anchor, in well under a second."""
    assert len(BOMB.encode()) < 400
    problems, seconds, peak = measured(lambda: build_policy({'p.yaml': BOMB}))
    assert problems == ['p.yaml:1:4: anchors (&a) and aliases (*a) are not allowed in a policy: '
                        'write the value out, so each rule reads as what it grants']  # fmt: skip
    assert seconds < 0.5
    assert peak < 5_000_000


def test_self_referencing_alias_is_a_problem_not_a_recursion_error():
    """``g: &a [*a]`` once escaped the loader as RecursionError, killing the reload watcher."""
    assert problems_of('g: &a [*a]\n') == [
        'p.yaml:1:4: anchors (&a) and aliases (*a) are not allowed in a policy: write the value out, '
        'so each rule reads as what it grants'
    ]


@pytest.mark.parametrize('text', [
    'a: *nowhere\n',
    'a: &x 1\n',
    'a: &x {b: 1}\nc: {<<: *x}\n',
    GOOD + '    requesters: &r [U0ALEX]\n',
], ids=['alias', 'anchor', 'merge', 'anchor-in-rule'])  # fmt: skip
def test_every_anchor_or_alias_is_named_where_it_is(text):
    problems = problems_of(text)
    assert len(problems) == 1 and WHERE.match(problems[0]) and 'not allowed in a policy' in problems[0], problems


@pytest.mark.parametrize(
    'opening, closing', [('[', ']'), ('{a: ', '}'), ('- ', '')], ids=['flow-seq', 'flow-map', 'block-seq']
)
def test_deep_nesting_is_a_problem(opening, closing):
    """Nesting far beyond what a policy needs stops at a bound, before any recursion can overflow."""
    if opening == '- ':
        text = ''.join('  ' * i + '-\n' for i in range(3000)) + '  ' * 3000 + 'x\n'
    else:
        text = 'a: ' + opening * 5000 + 'x' + closing * 5000 + '\n'
    problems, seconds, _ = measured(lambda: build_policy({'p.yaml': text}))
    assert len(problems) == 1 and WHERE.match(problems[0]), problems
    # libyaml refuses flow collections nested 1,000 deep while scanning ahead, before jit's bound is reached.
    assert 'nested deeper than 64 levels' in problems[0] or 'exceeded maximum nesting depth' in problems[0]
    assert seconds < 2


def test_too_many_values_is_a_problem():
    """A file of 120,000 tiny items is refused at the bound, without building them all."""
    text = 'a: [' + ','.join(['x'] * 120_000) + ']\n'
    problems, seconds, peak = measured(lambda: build_policy({'p.yaml': text}))
    assert len(problems) == 1 and WHERE.match(problems[0]) and 'more than' in problems[0], problems
    assert seconds < 10 and peak < 100_000_000


@pytest.mark.parametrize('value, where, words', [
    ('9' * 5000, '6:16', 'a number of more than'),
    ('2020-13-45', '6:5', '`approvals` must be a whole number'),
    ('!!binary aGVsbG8=', '6:16', 'not allowed in a policy'),
    ('!!python/object:os.system x', '6:16', 'not allowed in a policy'),
    ('!custom x', '6:16', 'not allowed in a policy'),
    ('.inf', '6:16', 'not a finite number'),
    ('"\\uD800"', '6:1[69]', 'Unicode'),  # libyaml names the escape itself (6:19)
], ids=['huge-int', 'bad-date', 'binary', 'python', 'custom-tag', 'infinity', 'lone-surrogate'])  # fmt: skip
def test_values_yaml_cannot_construct_are_problems(value, where, words):
    """``approvals: 999…9`` (5,000 digits), an impossible date, tags a policy never needs: one problem each."""
    problems = problems_of(GOOD + f'    approvals: {value}\n')
    assert len(problems) == 1 and re.match(rf'p\.yaml:{where}: ', problems[0]) and words in problems[0], problems


def test_a_date_is_text_not_a_timestamp():
    """YAML 1.1 reads ``2024-01-01`` as a date; in a policy it stays the text written (JSON-safe everywhere)."""
    policy = build_policy({'p.yaml': GOOD.replace('roles: [read]}', 'roles: [read], description: 2024-01-01}')})
    assert policy.resources['db'].description == '2024-01-01'
    text = GOOD.replace('roles: [read]}', 'roles: [read], settings: {url: "http://x", since: 2024-01-01}}')
    assert build_policy({'p.yaml': text}).resources['db'].settings['since'] == '2024-01-01'


SETTING = GOOD.replace('roles: [read]}', 'roles: [read],\n       settings: {url: "http://x", retries: NUMBER}}')
#: Where NUMBER starts in SETTING.
NUMBER_AT = '3:45'


@pytest.mark.parametrize('value', [
    '0x' + 'f' * 4200,  # ~5,000 decimal digits: no json.dumps of the settings could write it
    '0x8000000000000000', '-0x8000000000000000', '0x1_0000_0000_0000_0000',
    '01000000000000000000000', '0b1' + '0' * 63, '9_223_372_036_854_775_808',
    '1:0:0:0:0:0:0:0:0:0:0:0',  # YAML 1.1 sexagesimal: 60**11
    '9' * 4000,
])  # fmt: skip
def test_a_number_is_bounded_by_its_value_whatever_its_form(value):
    """The digits written were bounded, but `0x` + 4,200 `f` loaded as an int of ~5,000 decimal digits, and every
    json.dumps of the settings raised: the reconciler stopped for every resource. Any whole number must fit in 64
    bits, in every form YAML reads one (hex, octal, binary, underscores, sexagesimal), refused where written."""
    problems = problems_of(SETTING.replace('NUMBER', value))
    assert len(problems) == 1 and problems[0].startswith(f'p.yaml:{NUMBER_AT}: '), problems
    assert 'number' in problems[0] and len(problems[0]) < 300, problems


@pytest.mark.parametrize('value, expected', [
    ('0x7fffffffffffffff', 2**63 - 1), ('-0x7fff_ffff_ffff_ffff', -(2**63 - 1)), ('9223372036854775807', 2**63 - 1),
    ('017', 15), ('0b101', 5), ('1_000', 1000), ('1:30', 90), ('1.0e+300', 1e300), ('-2.5', -2.5),
])  # fmt: skip
def test_numbers_within_64_bits_load_as_written(value, expected):
    policy = build_policy({'p.yaml': SETTING.replace('NUMBER', value)})
    assert policy.resources['db'].settings['retries'] == expected


@pytest.mark.parametrize('key, where', [
    ('1', '2:5'), ('true', '2:5'), ('null', '2:5'), ('1.5', '2:5'), ('[a, b]', '2:5'), ('{a: 1}', '2:5'),
], ids=['int', 'bool', 'null', 'float', 'list', 'mapping'])  # fmt: skip
def test_keys_that_are_not_strings_are_problems(key, where):
    """``on:``, ``1:``, ``true:`` are read by YAML as booleans and numbers: a key must be written as text."""
    problems = problems_of(f'groups:\n  ? {key}\n  : [alex@example.com]\n')
    assert len(problems) == 1 and problems[0].startswith(f'p.yaml:{where}: ') and 'a key must be' in problems[0]


def test_more_than_one_document_is_a_problem():
    assert problems_of(GOOD + '---\nadmins: [U0SAM]\n') == [
        'p.yaml:6:1: a policy file is one YAML document (found a second one here)'
    ]


@pytest.mark.parametrize('text, where, words', [
    ('resources:\n  db: {provider: webhook, roles: [read]}\nrequests:\n  - name: r\n    resources: [nope]\n'
     '    roles: [read]\n    approvers: [U0SAM]\n', '5:17', 'unknown resource `nope`'),
    (GOOD.replace('name: r', 'name: [1, 2]'), '4:5', '`name` must be'),
    (GOOD.replace('roles: [read]}', 'roles: [read], description: [x]}'), '2:42', '`description`'),
    (GOOD + '    approvals: 100000\n', '6:5', '`approvals` must be a whole number'),
], ids=['unknown-resource-with-roles', 'name-not-text', 'description-not-text', 'absurd-approvals'])  # fmt: skip
def test_rule_mistakes_that_once_crashed_or_slipped_through(text, where, words):
    """A rule naming an unknown resource and a role crashed validate with KeyError; names must be text."""
    problems = problems_of(text)
    assert len(problems) == 1 and problems[0].startswith(f'p.yaml:{where}: ') and words in problems[0], problems


# -- reading the files: size, encoding, what is not a file ----------------------------------------------------------


def test_a_binary_file_is_a_problem_at_its_first_bad_byte(tmp_path):
    (tmp_path / 'p.yaml').write_bytes(b'resources:\n  db: \xff\xfe\n')
    assert read_problems(tmp_path) == [f'{tmp_path}/p.yaml:2:7: not UTF-8 text (byte 0xff)']


def read_problems(directory):
    with pytest.raises(PolicyConfigError) as info:
        read_policy_dir(directory)
    return info.value.problems


def test_a_huge_file_is_refused_before_it_is_read(tmp_path):
    """A sparse 4 GiB file: its size is checked first, so refusing it takes no time and no memory."""
    with open(tmp_path / 'big.yaml', 'wb') as f:
        f.truncate(4 << 30)
    problems, seconds, peak = measured(lambda: read_policy_dir(tmp_path))
    assert problems == [f'{tmp_path}/big.yaml:1:1: the file has {4 << 30} bytes; a policy file may have at most '
                        f'{MAX_FILE_BYTES}']  # fmt: skip
    assert seconds < 0.5 and peak < 1_000_000


def test_the_files_together_are_bounded_too(tmp_path):
    part = 'admins:\n' + '  - U0SAM\n' * ((MAX_FILE_BYTES - 100) // 10)
    for i in range(MAX_TOTAL_BYTES // MAX_FILE_BYTES + 1):
        (tmp_path / f'p{i:02}.yaml').write_text(part)
    problems = read_problems(tmp_path)
    assert len(problems) == 1 and f'more than {MAX_TOTAL_BYTES} bytes' in problems[0], problems


def test_too_many_files_is_a_problem(tmp_path):
    for i in range(MAX_FILES + 1):
        (tmp_path / f'p{i:04}.yaml').write_text('admins: []\n')
    problems = read_problems(tmp_path)
    assert len(problems) == 1 and f'more than {MAX_FILES} policy files' in problems[0], problems


def test_what_is_not_a_regular_file_is_a_problem_and_never_waits(tmp_path):
    """A FIFO would block a reader forever; a directory or a dangling link named *.yaml cannot be read."""
    (tmp_path / 'good.yaml').write_text(GOOD)
    os.mkfifo(tmp_path / 'fifo.yaml')
    (tmp_path / 'dir.yaml').mkdir()
    (tmp_path / 'dangling.yaml').symlink_to(tmp_path / 'nowhere')
    started = time.perf_counter()
    problems = read_problems(tmp_path)
    assert time.perf_counter() - started < 1
    assert sorted(problems) == [
        f'{tmp_path}/dangling.yaml:1:1: cannot read the file: it does not exist (a dangling link?)',
        f'{tmp_path}/fifo.yaml:1:1: not a regular file',
    ], problems


def test_a_file_that_fails_to_read_is_a_problem(tmp_path, monkeypatch):
    """Permissions, I/O errors: whatever ``open`` raises is a problem naming the file."""
    (tmp_path / 'p.yaml').write_text(GOOD)
    real_open = os.open

    def refusing_open(path, *args, **kwargs):
        if str(path).endswith('p.yaml'):
            raise PermissionError(13, 'Permission denied', str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, 'open', refusing_open)
    assert read_problems(tmp_path) == [f'{tmp_path}/p.yaml:1:1: cannot read the file: Permission denied']


def test_a_long_name_quoted_in_many_problems_does_not_multiply_them():
    """A rule named with 100,000 characters and 5,000 unknown keys: each problem quotes the name, but is one
    short line, so 160 KB of policy cannot make gigabytes of problems (to log and post to the audit channel)."""
    text = 'requests:\n  - name: ' + 'n' * 100_000 + '\n' + ''.join(f'    k{i}: 1\n' for i in range(5000))
    problems, seconds, peak = measured(lambda: build_policy({'p.yaml': text}))
    assert len(problems) == 5001 and all(WHERE.match(p) for p in problems), [p[:300] for p in problems[:2]]
    assert 'unknown key `k0` in rule `nnn' in problems[0] or 'unknown key `k0` in rule `nnn' in problems[1]
    assert sum(map(len, problems)) < 10_000_000
    assert peak < 50_000_000 and seconds < 10


def test_an_unknown_reference_does_not_list_every_defined_name():
    """5,000 groups and 5,000 references to a group that does not exist: each problem names a few of the defined
    groups and how many more, not all 5,000 (which made 170 MB of problems from 100 KB of policy)."""
    groups = 'groups:\n' + ''.join(f'  g{i}: []\n' for i in range(5000))
    admins = 'admins:\n' + '  - group:nope\n' * 5000
    rules = 'requests:\n  - name: r\n    resources: [' + ', '.join(['nothing'] * 2000) + ']\n    approvers: [g1]\n'
    resources = 'resources:\n' + ''.join(f'  res{i}: {{provider: webhook, roles: [read]}}\n' for i in range(2000))
    files = {'a.yaml': groups, 'b.yaml': admins, 'c.yaml': rules, 'd.yaml': resources}
    problems, seconds, peak = measured(lambda: build_policy(files))
    unknown_group = [p for p in problems if 'unknown group `nope`' in p]
    unknown_resource = [p for p in problems if 'unknown resource `nothing`' in p]
    assert len(unknown_group) == 5000 and len(unknown_resource) == 2000, [p[:300] for p in problems[:3]]
    assert 'g0, g1, g2' in unknown_group[0] and 'more' in unknown_group[0], unknown_group[0][:300]
    assert 'res0, res1' in unknown_resource[0] and 'more' in unknown_resource[0], unknown_resource[0][:300]
    assert max(map(len, problems)) < 1000
    assert peak < 50_000_000 and seconds < 10


def test_a_group_named_many_times_costs_its_size_once():
    """A group of 20,000 emails named 20,000 times (in admins, in another group): each distinct group is added
    once, not once per mention (400 million set insertions, seconds of a loader's CPU per reload)."""
    big = 'groups:\n  big:\n' + ''.join(f'    - u{i}@x.io\n' for i in range(20_000))
    many = 'groups:\n  again: [' + ', '.join(['big'] * 20_000) + ']\n'
    admins = 'admins:\n' + '  - group:big\n' * 20_000
    files = {'a.yaml': big, 'b.yaml': many, 'c.yaml': admins, 'd.yaml': GOOD}
    started = time.process_time()  # the loader's CPU, which a loaded machine does not stretch as it does the clock
    policy = build_policy(files)
    seconds = time.process_time() - started
    assert len(policy.admins) == 20_000 and policy.groups['again'] == policy.groups['big']
    assert seconds < 2.5, seconds
