"""Durations as people type them."""

import pytest

from bot.core import durations
from bot.core.durations import DurationError, format_duration, looks_like_duration, parse_duration


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


@pytest.mark.parametrize(
    'text', ['', 'soon', '2 hourz', '-5m', '0s', 'h', '5', True, '1.5h', 1.5, float('inf'), [1] * 100, {'h': 1}, None]
)
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


@pytest.mark.parametrize(
    'value',
    ['9' * 5000 + 'h', '1' + '0' * 20 + 's', '3651d', '99999999999h', '1d' * 5000, 10**5000, 3651 * 86400, '9' * 5000],
    ids=['5000-digits', '21-digits', 'over-ten-years', '11-digits', 'many-parts', 'huge-int', 'int-over-ten-years',
         'digits-without-unit'],
)  # fmt: skip
def test_numbers_too_large_are_refused_plainly(value):
    """Any number of digits, as text or an int, is a DurationError with a short message, never Python's digit
    limit (a ValueError that is not a DurationError) nor a message that repeats thousands of digits."""
    with pytest.raises(DurationError) as refused:
        parse_duration(value)
    assert len(str(refused.value)) < 200, str(refused.value)[:300]
    if value != '9' * 5000:
        assert 'too long' in str(refused.value) and '3650d' in str(refused.value)


def test_the_longest_duration_is_accepted():
    """Ten years exactly is the bound; leading zeros do not count as digits."""
    assert parse_duration('3650d') == durations.MAX_DURATION == 3650 * 86400
    assert parse_duration('0' * 5000 + '90s') == 90
    assert looks_like_duration('9' * 5000 + 'h'), 'written as a duration: parse_duration says why it is refused'
    assert not looks_like_duration('9' * 5000)


@pytest.mark.parametrize('text', ['\u0661h', '\u00b2m', '\uff11h'])
def test_only_ascii_digits_count(text):
    """Digits of other scripts are not a duration (int() would read some of them, and refuse others)."""
    with pytest.raises(DurationError):
        parse_duration(text)


@pytest.mark.parametrize('text', ['²', '\uff11', '\u0663', '1' * 2000, str(10**10), '', '-5', ' 60', '1e3', None, 60])
def test_a_seconds_value_from_a_button_or_an_option_is_ascii_digits_and_bounded(text):
    """Button values and select options carry seconds; anything else is refused, never an exception."""
    assert durations.seconds_value(text) is None


def test_a_seconds_value_reads_plain_seconds():
    assert durations.seconds_value('1800') == 1800
