"""Reading cards in tests: elements by id, and every text a person would see."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def walk(node: Any) -> Iterator[dict]:
    """Every object in a card, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def element(card: dict, element_id: str) -> dict:
    found = [node for node in walk(card) if node.get("id") == element_id]
    assert len(found) == 1, f"{len(found)} elements with id {element_id!r} in the card"
    return found[0]


def text_of(card: dict, element_id: str) -> str:
    return element(card, element_id)["text"]


def status_of(card: dict, element_id: str = "status") -> str:
    """The status badge's word: "Open", "Acknowledged", "Resolved", "Reopened" (``status-N``: the Nth
    alert of a list)."""
    return text_of(card, element_id).split()[-1].title()


def texts(card: dict) -> list[str]:
    """Every text, title and fact value in the card."""
    return [node[key] for node in walk(card) for key in ("text", "value", "title") if isinstance(node.get(key), str)]
