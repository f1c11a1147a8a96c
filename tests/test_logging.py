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


def test_a_request_aiohttp_cannot_parse_is_one_warning_line_without_the_bytes(capsys, restore_logging):
    """A NUL byte in a header (the client's mistake, answered 400 by aiohttp): one warning, no traceback, and not
    the header's bytes, which may be a token."""
    from aiohttp.http_exceptions import BadHttpMessage

    configure_logging(json=True)
    try:
        raise BadHttpMessage("Invalid header value char: b'Authorization: Bearer xoxb-secret\\x00'")
    except BadHttpMessage as exc:
        logging.getLogger('aiohttp.server').error('Error handling request from %s', '10.0.0.7', exc_info=exc)
    logging.getLogger('aiohttp.server').error('Unhandled exception', exc_info=ValueError('a real bug'))
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0] == {**lines[0], 'event': 'http.bad_request', 'level': 'warning', 'status': 400,
                        'error': 'BadHttpMessage', 'peer': '10.0.0.7'}  # fmt: skip
    assert 'exception' not in lines[0] and 'xoxb-secret' not in json.dumps(lines[0])
    assert lines[1]['level'] == 'error' and 'exception' in lines[1], 'a server bug stays an error with its traceback'


def test_a_body_aiohttp_cannot_decode_is_one_warning_line(capsys, restore_logging):
    """A body that is not in the Content-Encoding it claims: the handler answers 400, then aiohttp reads what is
    left of the body and logs the same error as an "Unhandled exception" (RequestPayloadError, caused by a
    ContentEncodingError). The client's mistake: one warning, no traceback."""
    from aiohttp.http_exceptions import ContentEncodingError
    from aiohttp.web import RequestPayloadError

    configure_logging(json=True)
    try:
        try:
            raise ContentEncodingError('Can not decode content-encoding: gzip')
        except ContentEncodingError as cause:
            raise RequestPayloadError('400, message: Can not decode content-encoding: gzip') from cause
    except RequestPayloadError as exc:
        logging.getLogger('aiohttp.server').error('Unhandled exception', exc_info=exc)
    [line] = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert line == {**line, 'event': 'http.bad_request', 'level': 'warning', 'status': 400,
                    'error': 'ContentEncodingError'}  # fmt: skip
    assert 'exception' not in line and line.get('peer') is None
