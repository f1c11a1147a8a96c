"""Numbers typed on jit's command lines (``jit ci``, ``jit policy explain|validate``, ``jit audit --since``):
however many digits, one line that says the duration is too long, never Python's 4,300-digit ``ValueError``
as a traceback, nor a message quoting all the digits."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.audit.filters import TimeError, parse_when
from bot.cli import main

HUGE = '9' * 5000
POLICIES = Path(__file__).resolve().parents[1] / 'policies'


def _one_clear_line(text: str) -> None:
    assert 'too long a duration' in text and 'Traceback' not in text and HUGE not in text, text[:300]


def test_jit_ci_timeout(monkeypatch, capsys):
    monkeypatch.setenv('JIT_URL', 'http://127.0.0.1:9')
    monkeypatch.setenv('JIT_TOKEN', 'jit_' + 'x' * 40)
    assert main(['ci', 'request', 'demo-app', 'read', '--timeout', f'{HUGE}h']) != 0
    _one_clear_line(capsys.readouterr().err)


def test_jit_policy_explain_duration(capsys):
    assert main(['policy', 'explain', 'alex@example.com', 'demo-app', 'read', f'{HUGE}h', '--dir', str(POLICIES)]) == 2
    _one_clear_line(capsys.readouterr().out)


def test_jit_policy_validate_max_duration(capsys):
    with pytest.raises(SystemExit) as usage:
        main(['policy', 'validate', str(POLICIES), '--max-duration', f'{HUGE}h'])
    assert usage.value.code == 2
    _one_clear_line(capsys.readouterr().err)


def test_audit_since():
    with pytest.raises(TimeError) as refused:
        parse_when(f'{HUGE}d', now=1.8e9)
    _one_clear_line(str(refused.value))


@pytest.mark.parametrize('seq', [HUGE, '\u00b2', '99999999999999999999'])
def test_audit_export_seq(capsys, seq):
    with pytest.raises(SystemExit) as usage:
        main(['audit', 'export', '--from-seq', seq])
    err = capsys.readouterr().err
    assert usage.value.code == 2 and 'is not a seq' in err and HUGE not in err, err[:300]
