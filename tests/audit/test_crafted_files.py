"""A JSONL file handed to an auditor may hold anything: ``query``, ``export`` and ``report`` never crash on it.

A line whose fields are not what jit writes (a requester that is a string, a detail that is a list, a time
no date has) is skipped and named on stderr, ``FILE:N: what is wrong``, as an unreadable line is; the other
events are shown and the exit code stays 0. The valid lines come from a real trail (the real use cases on a
real Redis, exported with ``jit audit export``); the property test changes one field of one of them at a time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core.model import Principal
from tests.audit.conftest import cli
from tests.audit.seed import Jit
from tests.core.policy_fixtures import SAM

pytestmark = pytest.mark.redis

EVE = Principal(slack_id='U0EVE', email='eve@example.com', name='Eve')
#: Each reader of a file, as an auditor runs it.
RUNS = (
    ('query', '--format', 'table'),
    ('query', '--format', 'csv'),
    ('export', '--format', 'csv'),
    ('report', '--resource', 'demo', '--since', '2026-11-01', '--until', '2026-12-01'),
    ('report', '--resource', 'demo', '--since', '2026-11-01', '--until', '2026-12-01', '--format', 'csv'),
)
#: Fields the readers look for that these events do not all have.
EXTRA = ('detail.by', 'detail.to', 'detail.expires_at', 'detail.extends', 'detail.extension', 'detail.why',
         'detail.via', 'detail.actor_email', 'detail.actor_name', 'request.requester.pipeline', 'request.ticket',
         'error', 'rule')  # fmt: skip


@pytest.fixture(name='lines')
def _lines(jit: Jit, cli_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The JSON lines of a real trail: requested, approved, granted, extended, released, denied."""
    jit.at('2026-11-16T12:00:00+00:00')
    granted = jit.submit.execute(requester=EVE, resource='demo', role=None, duration=600, reason='INC-1 look')
    jit.approve.execute(granted.id, SAM)
    jit.grant.execute(granted.id)
    extension = jit.at('2026-11-16T12:05:00+00:00').extend.execute(granted.id, EVE, 600, 'more').id
    jit.approve.execute(extension, SAM)
    jit.grant.execute(extension)
    jit.at('2026-11-16T12:10:00+00:00').end.release(granted.id, EVE)
    jit.revoke.execute(granted.id)
    denied = jit.submit.execute(requester=EVE, resource='demo', role=None, duration=300, reason='again')
    jit.deny.execute(denied.id, SAM, 'no')
    target = tmp_path / 'trail.jsonl'
    assert cli('export', '--output', str(target)) == 0
    capsys.readouterr()
    return target.read_text(encoding='utf-8').splitlines()


def _paths(record: dict[str, Any], prefix: str = '') -> list[str]:
    out = []
    for key, value in record.items():
        out.append(prefix + key)
        if isinstance(value, dict):
            out += _paths(value, f'{prefix}{key}.')
    return out


def _replace(record: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split('.')
    for key in parents:
        if not isinstance(record.get(key), dict):
            record[key] = {}
        record = record[key]
    record[last] = value


def _run_all(path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Every reader on ``path``; each must finish (exit 0) and say what it said on stderr."""
    said = []
    for argv in RUNS:
        code = cli(*argv, '--file', str(path))
        err = capsys.readouterr().err
        assert code == 0, (argv, err)
        assert 'Traceback' not in err
        said.append(err)
    return said


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([1e308, -1e308, 1e-308, 10**30, -(2**63), 2**64, 253402300800, -62135596801])
    | st.sampled_from(['\ud800', '\x1b[2J\u202e', 'r-0001', 'U0SAM', 'demo']),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)  # fmt: skip


def test_one_field_replaced_by_any_json_value(lines, tmp_path, capsys):
    """Whatever one field of one line becomes, every reader finishes; a skipped line is named by its number."""
    path = tmp_path / 'crafted.jsonl'

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data(), value=JSON)
    def check(data: st.DataObject, value: Any) -> None:
        index = data.draw(st.integers(0, len(lines) - 1), label='line')
        record = json.loads(lines[index])
        field = data.draw(st.sampled_from(sorted(set(_paths(record)) | set(EXTRA))), label='field')
        _replace(record, field, value)
        crafted = list(lines)
        crafted[index] = json.dumps(record)
        path.write_text('\n'.join(crafted) + '\n', encoding='utf-8')
        said = _run_all(path, capsys)
        for err in said:
            for line in (line for line in err.splitlines() if not line.startswith('exported ')):
                assert line.startswith(f'jit: skipped {path}:{index + 1}: '), line
                assert line.endswith('(run jit audit verify)')
        if field in ('seq', 'time') and not (isinstance(value, int | float) and not isinstance(value, bool)):
            assert all(f'{path}:{index + 1}: ' in err for err in said)
        if field == 'time' and isinstance(value, float) and not math.isfinite(value):
            assert all(f'{path}:{index + 1}: time ' in err for err in said)

    check()


def _crafted(lines: list[str], tmp_path: Path, index: int, field: str, value: Any) -> Path:
    record = json.loads(lines[index])
    _replace(record, field, value)
    path = tmp_path / 'crafted.jsonl'
    path.write_text('\n'.join([*lines[:index], json.dumps(record), *lines[index + 1 :]]) + '\n', encoding='utf-8')
    return path


@pytest.mark.parametrize('argv', RUNS[:4], ids=['query', 'query-csv', 'export-csv', 'report'])
def test_a_requester_that_is_a_string(lines, tmp_path, capsys, argv):
    path = _crafted(lines, tmp_path, 0, 'request.requester', 'U0EVE')
    assert cli(*argv, '--file', str(path)) == 0
    out, err = capsys.readouterr()
    assert (
        err.splitlines(keepends=True)[0]
        == f"jit: skipped {path}:1: request.requester 'U0EVE' is not an object (run jit audit verify)\n"
    )
    assert 'r-0001' in out  # the other events of the request are shown


def test_a_detail_that_is_a_list(lines, tmp_path, capsys):
    path = _crafted(lines, tmp_path, 1, 'detail', ['actor_email', 'sam@example.com'])
    assert cli(*RUNS[3], '--file', str(path)) == 0
    out, err = capsys.readouterr()
    assert err == (f"jit: skipped {path}:2: detail ['actor_email', 'sam@example.com'] is not an object "
                   '(run jit audit verify)\n')  # fmt: skip
    assert '| Eve <eve@example.com> |' in out


def test_a_time_no_date_has(lines, tmp_path, capsys):
    path = _crafted(lines, tmp_path, 2, 'time', 1e308)
    assert cli('export', '--format', 'csv', '--file', str(path)) == 0
    out, err = capsys.readouterr()
    assert (
        err.splitlines()[0]
        == f'jit: skipped {path}:3: time 1e+308 is not a time in Unix seconds (run jit audit verify)'
    )
    assert err.splitlines()[1].startswith(f'exported {len(lines) - 1} events')
    assert len(out.splitlines()) == len(lines)  # the header and every other event


def test_verify_still_checks_such_a_line_by_its_hash(lines, tmp_path, capsys):
    """A changed field is a changed event to ``verify``, whatever its type: the readers' skipping is not verify's."""
    path = _crafted(lines, tmp_path, 0, 'request.requester', 'U0EVE')
    assert cli('verify', '--file', str(path)) == 1
    assert capsys.readouterr().out.startswith('seq 1 changed')


def test_lines_json_cannot_hold_for_jit(lines, tmp_path, capsys):
    """Nesting deeper than Python's JSON reader goes, and an integer of more digits than it converts: named."""
    path = tmp_path / 'crafted.jsonl'
    path.write_text('\n'.join([lines[0], '[' * 100_000, '{"seq": ' + '9' * 5000 + '}', *lines[1:]]) + '\n')
    assert cli('query', '--format', 'csv', '--file', str(path)) == 0
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f'jit: skipped {path}:2: not JSON jit reads (nested too deeply) (run jit audit verify)',
        f'jit: skipped {path}:3: not JSON jit reads (Exceeds the limit (4300 digits) for integer string conversion: '
        'value has 5000 digits; use sys.set_int_max_str_digits() to increase the limit) (run jit audit verify)',
    ]
    assert len(out.splitlines()) == 1 + len(lines)
    assert cli('verify', '--file', str(path)) == 1
    assert (
        capsys.readouterr().out
        == f'seq 2 changed: not an audit event: not JSON jit reads (nested too deeply) (at {path}:2)\n'
    )


def test_a_lone_surrogate_is_shown(lines, tmp_path, capsys):
    """JSON can hold half a UTF-16 pair, which no UTF-8 output can write: it is shown as ``\\ud800``."""
    path = _crafted(lines, tmp_path, 0, 'request.reason', 'a\ud800b')
    for argv in RUNS:
        assert cli(*argv, '--file', str(path)) == 0
        out = capsys.readouterr().out
        assert '\ud800' not in out
        assert 'a\\ud800b' in out or 'report' in argv  # the report shows the reason of the grant's first event


def test_verify_names_a_lone_surrogate(lines, tmp_path, capsys):
    path = _crafted(lines, tmp_path, 1, 'request.reason', 'a\ud800b')
    assert cli('verify', '--file', str(path)) == 1
    assert capsys.readouterr().out == (f'seq 2 changed: its text holds half a UTF-16 surrogate pair, which no event '
                                       f'jit writes can (at {path}:2)\n')  # fmt: skip
