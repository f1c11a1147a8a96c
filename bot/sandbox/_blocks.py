"""Block Kit reading helpers for the local Slack: find buttons and inputs, flatten visible text.

Part of `bot/sandbox/` (the local Slack); pure functions over plain dicts, no I/O. The driver needs them to
press the buttons a message really shows, and tests need them to assert what a user would read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

JSON = dict[str, Any]


def block_id_of(block: JSON, index: int) -> str:
    """Return the block's `block_id`, or the stable one Slack would have assigned.

    Slack gives every block without a `block_id` a generated one and reports it in action payloads; a
    position-derived id keeps the payloads stable across clicks on the same message.

    Args:
        block: A Block Kit block.
        index: The block's position in its message or view.
    """
    return str(block.get("block_id") or f"b{index}")


def iter_buttons(blocks: list[JSON]) -> Iterator[tuple[str, JSON]]:
    """Yield `(block_id, button)` for every button a user can press in these blocks.

    Buttons live in `actions` blocks' elements and in section accessories; both are pressable.
    """
    for index, block in enumerate(blocks):
        candidates: list[Any] = []
        if block.get("type") == "actions":
            candidates = list(block.get("elements") or [])
        elif isinstance(block.get("accessory"), dict):
            candidates = [block["accessory"]]
        for element in candidates:
            if isinstance(element, dict) and element.get("type") == "button":
                yield block_id_of(block, index), element


def action_ids(blocks: list[JSON]) -> list[str]:
    """Return the action ids of all buttons in these blocks, in display order."""
    return [str(button.get("action_id", "")) for _, button in iter_buttons(blocks)]


def iter_inputs(blocks: list[JSON]) -> Iterator[tuple[str, JSON]]:
    """Yield `(block_id, element)` for every `input` block of a modal."""
    for index, block in enumerate(blocks):
        if block.get("type") == "input" and isinstance(block.get("element"), dict):
            yield block_id_of(block, index), block["element"]


def _text_of(obj: Any) -> str:
    """Return the string of a text object (`{"type": "mrkdwn", "text": ...}`) or a bare string."""
    if isinstance(obj, dict):
        return str(obj.get("text", ""))
    return obj if isinstance(obj, str) else ""


def _element_texts(element: Any) -> Iterator[str]:
    """Yield the visible strings of a block element (button labels, rich text leaves, images' alt text)."""
    if not isinstance(element, dict):
        return
    if element.get("type") == "image":
        yield str(element.get("alt_text", ""))
    elif "text" in element:
        yield _text_of(element["text"])
    for child in element.get("elements") or []:
        yield from _element_texts(child)


def blocks_text(blocks: list[JSON]) -> str:
    """Flatten what a reader sees in these blocks into one newline-separated string.

    Tests assert on content ("Approved by <@U0SAM>") without caring which block or field carries it.
    """
    parts: list[str] = []
    for block in blocks:
        if "text" in block:
            parts.append(_text_of(block["text"]))
        parts.extend(_text_of(field) for field in block.get("fields") or [])
        if "label" in block:
            parts.append(_text_of(block["label"]))
        for element in block.get("elements") or []:
            parts.extend(_element_texts(element))
        if isinstance(block.get("accessory"), dict):
            parts.extend(_element_texts(block["accessory"]))
    return "\n".join(part for part in parts if part)


#: Slack's limits on a static select: 100 options, or 100 option groups of 100 options each; 75 characters
#: of text in an option or a group's label.
MAX_SELECT_OPTIONS = 100
MAX_OPTION_GROUPS = 100
MAX_OPTION_TEXT = 75
_STATIC_SELECTS = {"static_select", "multi_static_select"}


def _elements(blocks: list[JSON]) -> Iterator[JSON]:
    """Yield every interactive element of these blocks: inputs' elements, accessories, actions' elements."""
    for block in blocks:
        candidates = [block.get("element"), block.get("accessory")]
        if block.get("type") == "actions":
            candidates.extend(block.get("elements") or [])
        yield from (c for c in candidates if isinstance(c, dict))


def _options_fit(options: Any) -> bool:
    return (
        isinstance(options, list)
        and 0 < len(options) <= MAX_SELECT_OPTIONS
        and all(isinstance(o, dict) and len(_text_of(o.get("text"))) <= MAX_OPTION_TEXT for o in options)
    )


def selects_within_limits(blocks: list[JSON]) -> bool:
    """Whether every static select here is one Slack accepts (it refuses the view with `invalid_arguments`).

    A static select has either `options` or `option_groups`, never both: at most 100 options, or at most 100
    groups each of 1 to 100 options, every text at most 75 characters. Slack refuses, it does not cut.
    """
    for element in _elements(blocks):
        if element.get("type") not in _STATIC_SELECTS:
            continue
        options, groups = element.get("options"), element.get("option_groups")
        if (options is None) == (groups is None):
            return False
        if options is not None and not _options_fit(options):
            return False
        if groups is not None and not (
            isinstance(groups, list)
            and 0 < len(groups) <= MAX_OPTION_GROUPS
            and all(
                isinstance(g, dict)
                and len(_text_of(g.get("label"))) <= MAX_OPTION_TEXT
                and _options_fit(g.get("options"))
                for g in groups
            )
        ):
            return False
    return True
