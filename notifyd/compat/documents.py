"""JSON bodies from other tools, read so that no document can break the reader.

``json.loads`` recurses once per level: 30,000 brackets inside the body limit raise
``RecursionError``, and a document a few hundred levels deep that does parse would break the
code walking it next (``str``, ``json.dumps``, validation). A document deeper than
``MAX_JSON_DEPTH`` is refused like malformed JSON, with ``ValueError``, which each dialect
answers in its own shape.
"""

from __future__ import annotations

import json
from typing import Any

# Far above any payload these tools send (notification data may nest 32 levels).
MAX_JSON_DEPTH = 64


class UnreadableJSON(ValueError):
    """The body is not JSON, or is nested deeper than ``MAX_JSON_DEPTH``."""


def load_json(raw: bytes | str) -> Any:
    """The document in ``raw``; UnreadableJSON when it is malformed or too deep."""
    try:
        document = json.loads(raw)
    except RecursionError:
        raise UnreadableJSON(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise UnreadableJSON(str(exc)) from None
    check_depth(document)
    return document


def check_depth(document: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """UnreadableJSON when ``document`` nests deeper than ``limit`` (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            raise UnreadableJSON(f"nested deeper than {limit} levels")
        stack.extend((child, depth + 1) for child in children)
