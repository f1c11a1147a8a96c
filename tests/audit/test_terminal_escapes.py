"""What a requester typed reaches an auditor's terminal as visible text, in every output of ``jit audit``.

A reason, a ticket, a name and a deny reason are typed in Slack or sent by a pipeline. Filing now refuses control
characters in a reason, but a trail holds what earlier versions took, and names come from Slack's directory. Here
each holds a window-title OSC, a line wipe, an OSC 8 link, a C1 CSI, DEL, a line separator and bidi overrides and
isolates, filed through the real use cases on a real Redis as an earlier jit took them; every table, CSV and
report must show them as ``\\x1b``, ``\\u202e``... and emit none of them, and the JSON lines must read back
exactly.
"""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from bot.core.model import Principal
from tests.audit.conftest import cli
from tests.audit.seed import Jit
from tests.core.policy_fixtures import SAM

pytestmark = pytest.mark.redis

#: Every kind: OSC title (BEL-ended), CSI line wipe, OSC 8 link (ST-ended), C1 CSI, DEL, U+2028, bidi RLO and RLI.
PAYLOAD = ('\x1b]0;TITLE\x07\x1b[2J\x1b[31mRED\x1b[0m \x1b[1G\x1b[2K \x1b]8;;https://evil.example\x1b\\link'
           '\x1b]8;;\x1b\\ \x9b2J \x7f \u2028 \u202eevil\u202c \u2066iso\u2069')  # fmt: skip
#: The escapes that must show instead.
SHOWN = ('\\x1b]0;TITLE\\x07', '\\x1b[1G\\x1b[2K', '\\x1b\\', '\\x9b2J', '\\x7f', '\\u2028', '\\u202e', '\\u202c',
         '\\u2066', '\\u2069')  # fmt: skip
#: A character no human-facing output may hold raw (a newline is checked per format).
RAW = re.compile('[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]')


def _file_requests(jit: Jit) -> None:
    eve = Principal(slack_id='U0EVE', email='eve@example.com', name='Eve ' + PAYLOAD)
    jit.at('2026-11-16T12:00:00+00:00')
    granted = jit.submit.execute(requester=eve, resource='demo', role=None, duration=300, reason='why ' + PAYLOAD,
                                 ticket='T-1 ' + PAYLOAD)  # fmt: skip
    jit.approve.execute(granted.id, SAM)
    jit.grant.execute(granted.id)
    denied = jit.submit.execute(requester=eve, resource='demo', role=None, duration=300, reason='again')
    jit.deny.execute(denied.id, SAM, 'no ' + PAYLOAD)


def _shows_everything(text: str) -> None:
    assert not RAW.search(text), repr(RAW.search(text))
    for shown in SHOWN:
        assert shown in text, shown


@pytest.fixture(name='filed')
def _filed(jit: Jit, cli_env: None, monkeypatch: pytest.MonkeyPatch) -> Jit:
    # As a jit before filing refused control characters in a reason (bot.core.model.bounded_reason) took them.
    with monkeypatch.context() as earlier:
        earlier.setattr('bot.core.model.control_in', lambda *_, **__: None)
        _file_requests(jit)
    return jit


def test_query_table(filed, capsys, monkeypatch):
    monkeypatch.setenv('COLUMNS', '3000')  # the note column whole (names are cut at 32 characters)
    assert cli('query', '--format', 'table') == 0
    out = capsys.readouterr().out
    _shows_everything(out)
    assert out.count('\n') == 1 + 6 + 1  # the header, one line an event, the count: no cell broke a line
    assert 'why \\x1b]0;TITLE' in out and 'Eve \\x1b]0;TITLE' in out


@pytest.mark.parametrize('argv', [('query', '--format', 'csv'), ('export', '--format', 'csv')])
def test_csv(filed, capsys, argv):
    assert cli(*argv) == 0
    out = capsys.readouterr().out
    _shows_everything(out)
    rows = list(csv.DictReader(io.StringIO(out)))
    created = rows[0]
    assert created['reason'].startswith('why \\x1b]0;TITLE\\x07')
    assert created['ticket'].startswith('T-1 \\x1b]0;TITLE\\x07')
    assert created['requester_identity'].startswith('Eve \\x1b]0;TITLE\\x07')
    assert rows[-1]['detail'].startswith('{')  # the deny reason, in the JSON of detail, shown too
    assert '"why": "no \\u001b]0;TITLE' in rows[-1]['detail']


def test_csv_keeps_a_formula_guard_and_a_line_break(jit, cli_env, capsys, monkeypatch):
    monkeypatch.setattr('bot.core.model.control_in', lambda *_, **__: None)  # as an earlier jit took it
    jit.at('2026-11-16T12:00:00+00:00').submit.execute(
        requester=Principal(slack_id='U0EVE', email='eve@example.com'), resource='demo', role=None, duration=300,
        reason='=HYPERLINK("x")\nsecond line\r\x1b[2K')  # fmt: skip
    assert cli('query', '--format', 'csv') == 0
    [row] = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert row['reason'] == '\'=HYPERLINK("x")\nsecond line\\x0d\\x1b[2K'


@pytest.mark.parametrize('fmt', ['markdown', 'csv'])
def test_report(filed, capsys, fmt):
    assert cli('report', '--resource', 'demo', '--since', '2026-11-01', '--until', '2026-12-01', '--format', fmt) == 0
    out = capsys.readouterr().out
    _shows_everything(out)
    if fmt == 'markdown':
        [row] = [line for line in out.splitlines() if line.startswith('| Eve')]
        assert '| 2026-11-16T12:00:00Z |' in row  # the start of the grant is on its row, not wiped
        assert row.endswith('| r-0001 |')  # one line: the separator became \u2028, the | an escaped \|


def test_jsonl_export_escapes_them_and_reads_back_exactly(filed, capsys, tmp_path):
    target = tmp_path / 'export.jsonl'
    assert cli('export', '--output', str(target)) == 0
    text = target.read_text(encoding='utf-8')
    assert not RAW.search(text)
    assert '\\u001b]0;TITLE\\u0007' in text and '\\u202e' in text and '\\u009b' in text
    first = json.loads(text.splitlines()[0])
    assert first['request']['reason'] == 'why ' + PAYLOAD
    assert first['request']['requester']['name'] == 'Eve ' + PAYLOAD
    capsys.readouterr()
    assert cli('verify', '--file', str(target)) == 0
    assert 'chain intact' in capsys.readouterr().out
