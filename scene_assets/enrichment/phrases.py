"""Words and phrase tables: the token type and the shared vocabulary compiled for fast longest-match scans."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from scene_assets import vocabulary as vocab


class Token(NamedTuple):
    key: str  # normalized form used for vocabulary lookups ("children's" → "children")
    surface: str  # what goes into the embedding text


def phrase_words(phrases: Iterable[str]) -> set[str]:
    return {word for phrase in phrases for word in phrase.split()}


class PhraseTable(dict):
    """Word tuples → values, with the phrase lengths indexed by first word for fast scanning."""

    def __init__(self, items: Mapping[str, Any] | Iterable[str]):
        pairs = items.items() if isinstance(items, Mapping) else ((phrase, phrase) for phrase in items)
        super().__init__((tuple(phrase.split()), value) for phrase, value in pairs)
        lengths: dict[str, set[int]] = {}
        for words in self:
            lengths.setdefault(words[0], set()).add(len(words))
        self._lengths_by_first = {first: sorted(ls, reverse=True) for first, ls in lengths.items()}

    def longest_at(self, keys: list[str], start: int) -> int:
        """Length of the longest phrase starting at keys[start], 0 when none."""
        for length in self._lengths_by_first.get(keys[start], ()):
            if start + length <= len(keys) and (length == 1 or tuple(keys[start : start + length]) in self):
                return length
        return 0

    def spans(self, keys: list[str]) -> list[tuple[int, int]]:
        """Non-overlapping longest matches, left to right."""
        found = []
        i = 0
        while i < len(keys):
            length = self.longest_at(keys, i)
            if length:
                found.append((i, i + length))
                i += length
            else:
                i += 1
        return found


COLOR_PHRASES = PhraseTable(vocab.COLOR_WORDS)
FINISH_PHRASES = PhraseTable(vocab.FINISH_COLORS)
PROSE_COLOR_PHRASES = PhraseTable({k: v for k, v in vocab.COLOR_WORDS.items() if k in vocab.PROSE_COLOR_WORDS})
MATERIAL_PHRASES = PhraseTable(vocab.MATERIAL_WORDS)
MODIFIER_PHRASES = PhraseTable(vocab.COLOR_MODIFIERS)
STYLE_PHRASES = PhraseTable(vocab.STYLE_WORDS)
ROOM_PHRASES = PhraseTable(vocab.ROOM_HINT_WORDS)
SINGLE_COLOR_WORDS = {k[0] for k in COLOR_PHRASES if len(k) == 1}
