r"""YAML to plain Python, remembering the line and column of every key and value, within bounds.

The parser's events are turned into data here, one at a time and without recursion, recording for each
path (``('requests', 0, 'timeout')``) where its key and its value were written, so validation errors can
say ``file:line:column``. A policy is plain data that people review in git, so only plain data is read,
and every way a file could make loading slow or large is a problem at the place it starts:

* no anchors (``&a``) or aliases (``*a``): 368 bytes of nested aliases expand to gigabytes (the "billion
  laughs"), and a reviewer must see each rule as what it grants, not a reference to somewhere else;
* values nested at most :data:`MAX_DEPTH` deep, at most ``max_nodes`` keys, values and items;
* text, numbers (floats finite, whole numbers within 64 bits in every form: ``0x``, ``0b``, ``017``, ``1:30``),
  true/false and null only: other tags (``!!binary``, ``!!python/...``, ``!x``) are refused, and a date stays
  the text written (YAML 1.1 would make ``2024-01-01`` a date object);
* keys are text (``on:``, ``1:`` and ``true:`` are read by YAML as booleans and numbers), each written once,
  on one line;
* text holds no control character but tabs and line breaks, and nothing invisible (bidi controls, zero-width
  spaces): a rule named ``"x\e[2K"`` would erase its own line from ``jit policy diff`` in a terminal, and
  ``U+202E`` shows a reviewer other text than the file holds (:mod:`bot.core.characters`);
* one document per file.

libyaml (C) produces the events when PyYAML was built with it, else PyYAML's own parser: the results are
the same, libyaml is about ten times faster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import yaml

from bot.core.characters import control_in, hidden_in

Path = tuple[Any, ...]
Pos = tuple[int, int]  # 1-based line and column

#: How deep values may nest. A policy needs about eight levels (requests, a rule, steps, a step, approvers,
#: a name), an inline IAM policy document a few more; 64 is far beyond those and far below any recursion limit.
MAX_DEPTH = 64
#: How many keys, values and items one load may hold (all its files together). A policy of 400 rules has
#: about 12,000; the bound keeps the memory of a load in the tens of megabytes.
MAX_NODES = 100_000
#: Python refuses to read integers with more digits than this (``sys.get_int_max_str_digits``).
_MAX_INT_DIGITS = 4300
#: The bits of the largest whole number a policy may hold, either side of zero (a signed 64-bit integer's).
#: The digits written bound nothing in other bases: ``0x`` and 4,200 ``f`` are ~5,000 decimal digits, which no
#: ``json.dumps`` of the settings could then write (Python's int-to-str limit). No setting needs more.
_MAX_INT_BITS = 63

_TAG = 'tag:yaml.org,2002:'
_STR, _INT, _FLOAT, _BOOL, _NULL = (_TAG + t for t in ('str', 'int', 'float', 'bool', 'null'))
#: Tags YAML resolves plain text to that a policy reads as the text written.
_AS_TEXT = frozenset({_TAG + 'timestamp', _TAG + 'value'})
_COLLECTION_TAGS = frozenset({None, '!', _TAG + 'map', _TAG + 'seq'})
_PARSER: type[Any] = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)
_ALIASES = (
    'anchors (&{0}) and aliases (*{0}) are not allowed in a policy: write the value out, so each rule reads '
    'as what it grants'
)


@dataclass
class MarkedDocument:
    """A parsed YAML file: its ``data`` and the 1-based lines of every path in it."""

    file: str
    data: Any
    key_pos: dict[Path, Pos] = field(default_factory=dict)
    value_pos: dict[Path, Pos] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    #: How many keys, values and items the file holds (what it used of the load's ``max_nodes``).
    nodes: int = 0

    def pos(self, path: Path, *, value: bool = False) -> Pos:
        """Where the key at ``path`` was written (its value with ``value=True``), else the nearest parent."""
        if value and path in self.value_pos:
            return self.value_pos[path]
        while path:
            if path in self.key_pos:
                return self.key_pos[path]
            if path in self.value_pos:
                return self.value_pos[path]
            path = path[:-1]
        return self.value_pos.get((), (1, 1))

    def line(self, path: Path) -> int:
        return self.pos(path)[0]

    def where(self, path: Path, *, value: bool = False) -> str:
        line, column = self.pos(path, value=value)
        return f'{self.file}:{line}:{column}'


class _Refused(Exception):
    """Something a policy may not contain, and where it starts."""

    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.mark, self.message = mark, message


def load_marked(file: str, text: str, *, max_nodes: int = MAX_NODES, used: int = 0) -> MarkedDocument:
    """Parse ``text``; every problem (YAML syntax, what a policy may not contain) names its line and column.

    Args:
        max_nodes: how many keys, values and items the whole load may hold.
        used: how many of them the files read before this one hold.

    Nothing else raises: even a failure of the interpreter itself (memory) becomes a problem naming the file.
    """
    doc = MarkedDocument(file, None)
    loader = None
    try:
        loader = _PARSER(text)
        doc.data = _Composer(loader, doc, max_nodes, used).compose()
    except _Refused as exc:
        doc.data = None
        doc.problems.append(f'{file}:{_mark(exc.mark)}: {exc.message}')
    except yaml.MarkedYAMLError as exc:
        doc.data = None
        mark = exc.problem_mark or exc.context_mark
        doc.problems.append(f'{file}:{_mark(mark) if mark else "1:1"}: YAML syntax error: {exc.problem or exc}')
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        doc.data = None
        doc.problems.append(_reader_problem(file, text, exc))
    except yaml.YAMLError as exc:
        doc.data = None
        doc.problems.append(f'{file}:1:1: YAML error: {exc}')
    except UnicodeEncodeError as exc:  # libyaml reads UTF-8: a lone surrogate cannot be encoded
        doc.data = None
        doc.problems.append(f'{file}:{_at(text, exc.start)}: not valid Unicode (a lone surrogate)')
    except Exception as exc:  # never expected, every input being bounded above: still a problem, never a traceback
        doc.data = None
        doc.problems.append(f'{file}:1:1: the file could not be read ({type(exc).__name__})')
    finally:
        if loader is not None:
            loader.dispose()
    return doc


_KEY = object()  # a mapping waiting for its next key


@dataclass(slots=True)
class _Open:
    """A mapping or sequence being read: where it is, what it holds so far, the key whose value comes next."""

    path: Path
    value: dict[str, Any] | list[Any]
    mark: Any  # where it starts
    key: Any = _KEY
    drop: bool = False  # the key was refused: its value is read, and dropped


class _Composer:
    """Events to data, iteratively, with the bounds of the module docstring."""

    def __init__(self, loader: Any, doc: MarkedDocument, max_nodes: int, used: int) -> None:
        self.loader, self.doc, self.max_nodes, self.used = loader, doc, max_nodes, used
        self.stack: list[_Open] = []
        self.constructor = yaml.constructor.SafeConstructor()
        self.finished, self.root = False, None

    def compose(self) -> Any:
        loader = self.loader
        loader.get_event()  # StreamStartEvent
        if loader.check_event(yaml.StreamEndEvent):
            return None
        loader.get_event()  # DocumentStartEvent
        while not self.finished:
            event = loader.get_event()
            if isinstance(event, yaml.CollectionEndEvent):
                closed = self.stack.pop()
                self.add(closed.value, closed.mark, None)
                continue
            anchor = getattr(event, 'anchor', None)
            if anchor is not None:  # an alias event's anchor is the name it refers to
                raise _Refused(event.start_mark, _ALIASES.format(anchor))
            self.doc.nodes += 1
            if self.used + self.doc.nodes > self.max_nodes:
                raise _Refused(event.start_mark, f'more than {self.max_nodes} keys, values and items in the policy '
                                                 '(its files together); a policy is at most that large')  # fmt: skip
            path = self.child_path()
            if path[-1:] != ('<key>',):
                self.doc.value_pos[path] = _pos(event.start_mark)
            if isinstance(event, yaml.ScalarEvent):
                self.add(self.scalar(event), event.start_mark, event.value)
                continue
            if event.tag not in _COLLECTION_TAGS:  # a mapping or a sequence starts
                raise _Refused(event.start_mark, f'the tag {_shown(event.tag)} is not allowed in a policy: '
                                                 'write a plain mapping or list')  # fmt: skip
            if len(self.stack) >= MAX_DEPTH:
                raise _Refused(event.start_mark, f'values are nested deeper than {MAX_DEPTH} levels')
            self.stack.append(_Open(path, {} if isinstance(event, yaml.MappingStartEvent) else [], event.start_mark))
        loader.get_event()  # DocumentEndEvent
        if not loader.check_event(yaml.StreamEndEvent):
            second = loader.get_event()
            raise _Refused(second.start_mark, 'a policy file is one YAML document (found a second one here)')
        return self.root

    def child_path(self) -> Path:
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.value, list):
            return (*top.path, len(top.value))
        return (*top.path, '<key>' if top.key is _KEY else top.key)

    def add(self, value: Any, mark: Any, raw: str | None) -> None:
        """Put a finished value where it belongs: in the open mapping or sequence, or the document's root."""
        if not self.stack:
            self.finished, self.root = True, value
            return
        top = self.stack[-1]
        if isinstance(top.value, list):
            top.value.append(value)
        elif top.key is _KEY:
            self.key(top, value, mark, raw)
        else:
            if not top.drop:
                top.value[top.key] = value
            top.key, top.drop = _KEY, False

    def key(self, top: _Open, key: Any, mark: Any, raw: str | None) -> None:
        assert isinstance(top.value, dict)
        top.key = key
        if not isinstance(key, str):
            top.key, top.drop = '<refused key>', True  # its value is read under this path, and dropped
            what = 'a list' if isinstance(key, list) else 'a mapping' if isinstance(key, dict) else None
            if what is None:
                kind = 'nothing (null)' if key is None else f'a {type(key).__name__}'
                what = f'{kind}: quote it (\'{raw}\') if it is a name'
            self.doc.problems.append(f'{self.doc.file}:{_mark(mark)}: a key must be text; YAML reads this as {what}')
            return
        if (control := control_in(key, allowed='')) is not None:
            top.key, top.drop = '<refused key>', True
            self.doc.problems.append(f'{self.doc.file}:{_mark(mark)}: a key is a name on one line; this one holds '
                                     f'the control character {control}')  # fmt: skip
            return
        if key in top.value:
            first = self.doc.key_pos.get((*top.path, key), (0, 0))[0]
            self.doc.problems.append(f'{self.doc.file}:{_mark(mark)}: `{key}` is defined twice (first at line {first})')
        self.doc.key_pos[(*top.path, key)] = _pos(mark)

    def scalar(self, event: Any) -> Any:
        tag = event.tag
        if tag is None or tag == '!':
            tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
            if tag in _AS_TEXT:
                tag = _STR
            elif tag == _TAG + 'merge':
                raise _Refused(event.start_mark, 'merge keys (<<) are not allowed in a policy: write the keys out')
        value = event.value
        if tag == _STR:
            try:
                value.encode('utf-8')
            except UnicodeEncodeError:
                raise _Refused(event.start_mark, 'not valid Unicode (a lone surrogate)') from None
            if (hidden := hidden_in(value)) is not None:
                raise _Refused(event.start_mark, f'text holds {hidden}, which shows as something else or '
                                                 'nothing (in a terminal, a CI log, a review): write it as plain '
                                                 'text')  # fmt: skip
            return value
        node = yaml.ScalarNode(tag, value, event.start_mark, event.end_mark, event.style)
        if tag == _BOOL:
            return self.constructor.construct_yaml_bool(node)
        if tag == _NULL:
            return None
        if tag not in (_INT, _FLOAT):
            raise _Refused(event.start_mark, f'the tag {_shown(tag)} is not allowed in a policy: write a plain value '
                                             '(text, a number, true or false)')  # fmt: skip
        if sum(c.isdigit() for c in value) > _MAX_INT_DIGITS:
            raise _Refused(event.start_mark, f'a number of more than {_MAX_INT_DIGITS} digits')
        construct = self.constructor.construct_yaml_int if tag == _INT else self.constructor.construct_yaml_float
        try:
            number = construct(node)
        except (ValueError, ArithmeticError):  # `0b_`, `._`: YAML 1.1 patterns Python cannot read
            raise _Refused(event.start_mark, f'`{value[:40]}` is not a number jit can read') from None
        if isinstance(number, float) and not math.isfinite(number):
            raise _Refused(event.start_mark, f'`{value[:40]}` is not a finite number')
        if isinstance(number, int) and abs(number).bit_length() > _MAX_INT_BITS:  # hex, octal, binary, 1:0:0…
            written = value if len(value) <= 40 else value[:39] + '…'
            raise _Refused(event.start_mark, f'`{written}` is too large a number: a whole number in a policy is at '
                                             f'most {2**_MAX_INT_BITS - 1} either side of zero (64 bits)')  # fmt: skip
        return number


def _shown(tag: str | None) -> str:
    return '!!' + tag[len(_TAG) :] if tag and tag.startswith(_TAG) else str(tag)


def _reader_problem(file: str, text: str, exc: yaml.reader.ReaderError) -> str:
    # PyYAML counts characters; libyaml counts the bytes of the UTF-8 text.
    position = exc.position
    if _PARSER is not yaml.SafeLoader:
        position = len(text.encode('utf-8', 'surrogatepass')[:position].decode('utf-8', 'ignore'))
    character = exc.character if isinstance(exc.character, str) else chr(exc.character)
    return f'{file}:{_at(text, position)}: YAML error: {exc.reason} ({character!r})'


def _at(text: str, position: int) -> str:
    before = text[:position]
    return f'{before.count(chr(10)) + 1}:{len(before) - before.rfind(chr(10))}'


def _pos(mark: Any) -> Pos:
    return mark.line + 1, mark.column + 1


def _mark(mark: Any) -> str:
    line, column = _pos(mark)
    return f'{line}:{column}'
