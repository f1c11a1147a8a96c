"""Characters that act instead of showing (``bot.core.characters``): shown as escapes, found, and blank text told
apart from text that says something."""

import pytest

from bot.core.characters import control_in, hidden_in, is_blank, visible


@pytest.mark.parametrize(
    ('text', 'shown'),
    [
        ('plain', 'plain'),
        ('x\x1b[2Ky', 'x\\x1b[2Ky'),
        ('\x1b]0;TITLE\x07', '\\x1b]0;TITLE\\x07'),
        ('line\nnext\r', 'line\\x0anext\\x0d'),
        ('\x85\x9b\x7f', '\\x85\\x9b\\x7f'),
        ('admin\u202e\u2066txt', 'admin\\u202e\\u2066txt'),
        ('zero\u200bwidth\ufeff', 'zero\\u200bwidth\\ufeff'),
        ('para\u2028sep', 'para\\u2028sep'),
        ('lone\ud800', 'lone\\ud800'),
        ('émoji 👍 and 中文', 'émoji 👍 and 中文'),
    ],
)
def test_visible_writes_every_acting_character_as_an_escape(text, shown):
    assert visible(text) == shown


def test_visible_keeps_what_the_format_has_room_for():
    assert visible('a\nb\x1b', keep='\n') == 'a\nb\\x1b'


def test_control_in_and_hidden_in_name_the_first_offender():
    assert control_in('tab\tand\nline') is None
    assert control_in('tab\t', allowed='') == '\\x09'
    assert control_in('bell\x07') == '\\x07'
    assert hidden_in('fine\ttext\n') is None
    assert hidden_in('x\x1b') == 'the control character \\x1b'
    assert hidden_in('x\u202e') == 'the invisible character \\u202e'


@pytest.mark.parametrize('text', ['', '   ', '\t\n', '\u200b', '\u3164', '\u2800', '\u115f\u1160', '\ufeff\u00a0',
                                  '\u0301', '\u200b \u3164 \u2800'])  # fmt: skip
def test_text_that_shows_nothing_is_blank(text):
    assert is_blank(text)


@pytest.mark.parametrize('text', ['x', ' ok ', '\u200bx', '中', '👍', '-'])
def test_text_that_shows_something_is_not_blank(text):
    assert not is_blank(text)
