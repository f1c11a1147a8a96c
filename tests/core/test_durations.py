"""Durations as people type them."""

import pytest

from bot.core.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ('text', 'seconds'),
    [
        ('90s', 90),
        ('15m', 900),
        ('2h', 7200),
        ('1d', 86400),
        ('1h30m', 5400),
        ('2 hours', 7200),
        ('30 minutes', 1800),
        ('1 hour 30 minutes', 5400),
        ('1H', 3600),
        (45, 45),
    ],
)
def test_parses_what_people_write(text, seconds):
    """Every form of product.md's list parses to the same seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize('text', ['', 'soon', '2 hourz', '-5m', '0s', 'h', '5', True, '1.5h'])
def test_refuses_what_is_not_a_duration(text):
    """Nonsense, zero and unit-less text are refused with a message, never guessed."""
    with pytest.raises(DurationError):
        parse_duration(text)


@pytest.mark.parametrize(('seconds', 'text'), [(5400, '1h30m'), (20, '20s'), (90000, '1d1h'), (0, '0s')])
def test_formats_compactly(seconds, text):
    """The compact form round-trips through the parser."""
    assert format_duration(seconds) == text
    if seconds:
        assert parse_duration(text) == seconds
