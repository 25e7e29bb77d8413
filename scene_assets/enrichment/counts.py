"""Set counts: how many pieces are sold together ("S/2", "2/A", "SET OF 3", "pair", "24-piece")."""

from __future__ import annotations

import re

from scene_assets import vocabulary as vocab

_SET_SLASH = re.compile(r"\bS\s*/\s*(\d{1,2})\b", re.IGNORECASE)  # S/2
_ASSORTED_SLASH = re.compile(r"\b(\d{1,2})\s*/\s*(?:ASST|AST|A)\b", re.IGNORECASE)  # 2/A, 3/ASST
_WITH_SLASH = re.compile(r"\bW/\s*", re.IGNORECASE)  # W/ HANDLES, W/CUTOUTS


def expand_slash_forms(text: str) -> tuple[str, int | None, bool]:
    count: int | None = None
    assorted = False
    first = min(
        (m for m in (_SET_SLASH.search(text), _ASSORTED_SLASH.search(text)) if m),
        key=lambda m: m.start(),
        default=None,
    )
    if first is not None:
        count = int(first.group(1))
    if _ASSORTED_SLASH.search(text):
        assorted = True
    text = _SET_SLASH.sub(lambda m: f" set of {m.group(1)} ", text)
    text = _ASSORTED_SLASH.sub(lambda m: f" {m.group(1)} assorted ", text)
    text = _WITH_SLASH.sub(" with ", text)
    return text, count, assorted


_SET_TRIGGERS = frozenset({"set", "pack", "pair", "pairs", "and", "+"})


def set_count_from_tokens(keys: list[str], allow_and_count: bool) -> int | None:
    for i, key in enumerate(keys):
        if key not in _SET_TRIGGERS and not key.isdigit():
            continue
        nxt = keys[i + 1] if i + 1 < len(keys) else ""
        after = keys[i + 2] if i + 2 < len(keys) else ""
        number = _count_value(nxt)
        if key == "set" and nxt == "of" and _count_value(after):
            return _count_value(after)
        if key.isdigit() and nxt in {"piece", "pieces", "pc", "pcs", "p", "pack"}:
            return int(key)
        if key == "pack" and nxt == "of" and _count_value(after):
            return _count_value(after)
        if key.isdigit() and nxt in {"pair", "pairs"}:
            return 2 * int(key)
        if key in {"pair", "pairs"} and not (i and keys[i - 1].isdigit()):
            return 2
        # "Quilt cover and 4 pillowcases", "Table+4 reclining chairs": the named item plus N more.
        if allow_and_count and i and key in {"and", "+"} and number and after and not after.isdigit():
            return 1 + number
    return None


def _count_value(key: str) -> int | None:
    if key.isdigit() and 0 < int(key) < 1000:
        return int(key)
    return vocab.NUMBER_WORDS.get(key)
