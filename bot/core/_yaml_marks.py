"""YAML to plain Python, remembering the line of every key and value.

PyYAML's composer gives nodes with marks; this walks them once and records, for each path
(``('requests', 0, 'timeout')``), where its key and its value were written, so validation
errors can say ``file:line``. Duplicate keys, which PyYAML silently lets win, are reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[Any, ...]


@dataclass
class MarkedDocument:
    """A parsed YAML file: its ``data`` and the 1-based lines of every path in it."""

    file: str
    data: Any
    key_lines: dict[Path, int] = field(default_factory=dict)
    value_lines: dict[Path, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def line(self, path: Path) -> int:
        """The line of the key at ``path`` (or of its value, or of the nearest parent)."""
        while path:
            if path in self.key_lines:
                return self.key_lines[path]
            if path in self.value_lines:
                return self.value_lines[path]
            path = path[:-1]
        return self.value_lines.get((), 1)

    def value_line(self, path: Path) -> int:
        return self.value_lines.get(path) or self.line(path)

    def where(self, path: Path, *, value: bool = False) -> str:
        return f'{self.file}:{self.value_line(path) if value else self.line(path)}'


def load_marked(file: str, text: str) -> MarkedDocument:
    """Parse ``text``; a YAML syntax error becomes a problem naming the line where YAML found it."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        what = exc.problem or str(exc)
        return MarkedDocument(file, None, problems=[f'{file}:{line}: YAML syntax error: {what}'])
    except yaml.YAMLError as exc:
        return MarkedDocument(file, None, problems=[f'{file}:1: YAML error: {exc}'])
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
        doc.problems.append(f'{file}:{mark.line + 1 if mark else 1}: {getattr(exc, "problem", exc)}')
    return doc


def _walk(node: yaml.Node, path: Path, doc: MarkedDocument, constructor: yaml.SafeLoader) -> Any:
    doc.value_lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _walk(key_node, (*path, '<key>'), doc, constructor)
            if not isinstance(key, str | int | float | bool) or key is None:
                doc.problems.append(f'{doc.file}:{key_node.start_mark.line + 1}: a key must be a plain name')
                continue
            if key in out:
                first = doc.key_lines.get((*path, key))
                doc.problems.append(
                    f'{doc.file}:{key_node.start_mark.line + 1}: `{key}` is defined twice (first at line {first})'
                )
            doc.key_lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _walk(value_node, (*path, key), doc, constructor)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*path, i), doc, constructor) for i, item in enumerate(node.value)]
    return constructor.construct_object(node, deep=True)
