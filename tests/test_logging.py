"""Logs never carry secrets: keys that look secret are masked, and tracebacks carry no local variables."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from bot.logging import configure_logging


@pytest.fixture(name='restore_logging')
def _restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def _fail_with_a_secret_in_scope() -> None:
    bot_token = 'xoxb-1234-secret-in-a-local'  # noqa: F841 - the local a traceback must not show
    raise ValueError('the provider said no')


@pytest.mark.parametrize('as_json', [True, False], ids=['json', 'console'])
def test_tracebacks_carry_no_locals(capsys, restore_logging, as_json):
    configure_logging(json=as_json)
    log = structlog.get_logger('test')
    try:
        _fail_with_a_secret_in_scope()
    except ValueError:
        log.exception('provider.failed', password='hunter2', resource='prod-db')
    logging.getLogger('slack_bolt.AsyncApp').error('Failed: %s', 'x', exc_info=ValueError('stdlib too'))
    err = capsys.readouterr().err
    assert 'xoxb-1234-secret-in-a-local' not in err and 'hunter2' not in err
    assert 'the provider said no' in err and '_fail_with_a_secret_in_scope' in err  # the traceback is there
    if as_json:
        first = json.loads(err.splitlines()[0])
        assert first['password'] == '***' and first['resource'] == 'prod-db'
        frames = first['exception'][0]['frames']
        assert frames and all('locals' not in frame or not frame['locals'] for frame in frames)
