"""YAML to plain Python, remembering the line and column of every key and value.

PyYAML's composer gives nodes with marks; this walks them once and records, for each path
(``('requests', 0, 'timeout')``), where its key and its value were written, so validation
errors can say ``file:line:column``. Duplicate keys, which PyYAML silently lets win, are reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[Any, ...]
Pos = tuple[int, int]  # 1-based line and column


@dataclass
class MarkedDocument:
    """A parsed YAML file: its ``data`` and the 1-based lines of every path in it."""

    file: str
    data: Any
    key_pos: dict[Path, Pos] = field(default_factory=dict)
    value_pos: dict[Path, Pos] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

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


def load_marked(file: str, text: str) -> MarkedDocument:
    """Parse ``text``; a YAML syntax error becomes a problem naming the line where YAML found it."""
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, found before parsing
        before = text[: exc.position]
        where = f'{before.count(chr(10)) + 1}:{len(before) - before.rfind(chr(10))}'
        return MarkedDocument(file, None, problems=[f'{file}:{where}: YAML error: {exc.reason} ({exc.character!r})'])
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f'{mark.line + 1}:{mark.column + 1}' if mark else '1:1'
        what = exc.problem or str(exc)
        return MarkedDocument(file, None, problems=[f'{file}:{where}: YAML syntax error: {what}'])
    except yaml.reader.ReaderError as exc:
        return MarkedDocument(file, None, problems=[f'{file}:1:1: YAML error: {exc.reason} ({exc.character!r})'])
    except yaml.YAMLError as exc:
        return MarkedDocument(file, None, problems=[f'{file}:1:1: YAML error: {exc}'])
    finally:
        loader.dispose()
    doc = MarkedDocument(file, None)
    if node is None:
        return doc
    constructor = yaml.SafeLoader('')
    try:
        doc.data = _walk(node, (), doc, constructor)
    except yaml.YAMLError as exc:
        mark = getattr(exc, 'problem_mark', None)
        where = f'{mark.line + 1}:{mark.column + 1}' if mark else '1:1'
        doc.problems.append(f'{file}:{where}: {getattr(exc, "problem", exc)}')
    return doc


def _walk(node: yaml.Node, path: Path, doc: MarkedDocument, constructor: yaml.SafeLoader) -> Any:
    doc.value_pos[path] = _pos(node)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _walk(key_node, (*path, '<key>'), doc, constructor)
            if not isinstance(key, str | int | float | bool) or key is None:
                doc.problems.append(f'{doc.file}:{_where(key_node)}: a key must be a plain name')
                continue
            if key in out:
                first = doc.key_pos.get((*path, key), (0, 0))[0]
                doc.problems.append(f'{doc.file}:{_where(key_node)}: `{key}` is defined twice (first at line {first})')
            doc.key_pos[(*path, key)] = _pos(key_node)
            out[key] = _walk(value_node, (*path, key), doc, constructor)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*path, i), doc, constructor) for i, item in enumerate(node.value)]
    return constructor.construct_object(node, deep=True)


def _pos(node: yaml.Node) -> Pos:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _where(node: yaml.Node) -> str:
    line, column = _pos(node)
    return f'{line}:{column}'
