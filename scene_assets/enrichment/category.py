"""The category and product type: the head noun of the text, found through the category keywords."""

from __future__ import annotations

from dataclasses import dataclass

from scene_assets import vocabulary as vocab
from scene_assets.enrichment.phrases import (
    COLOR_PHRASES,
    MATERIAL_PHRASES,
    MODIFIER_PHRASES,
    SINGLE_COLOR_WORDS,
    PhraseTable,
    Token,
)


def _plural_forms(word: str) -> set[str]:
    forms = {word}
    if word.endswith(("s", "x", "z", "ch", "sh")):
        forms.add(word + "es")
    elif word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        forms.add(word[:-1] + "ies")
    elif word.endswith("fe"):
        forms.add(word[:-2] + "ves")
    elif word.endswith("f"):
        forms.add(word[:-1] + "ves")
        forms.add(word + "s")
    else:
        forms.add(word + "s")
    return forms


def build_keyword_table() -> PhraseTable:
    table: dict[str, str] = {}
    for category, phrases in vocab.CATEGORY_KEYWORDS.items():
        for phrase in phrases:
            words = phrase.split()
            for last in _plural_forms(words[-1]):
                key = " ".join((*words[:-1], last))
                previous = table.setdefault(key, category)
                if previous != category:
                    raise ValueError(f"category keyword {key!r} is in {previous} and {category}")
    return PhraseTable(table)


KEYWORDS = build_keyword_table()
# Keywords that are also material or colour words ("glass", "fabric", "sheepskin") only decide the
# category when nothing else does: in "GLASS, 10" VASE" the product is a vase, in "Glass" a glass.
_WEAK_KEYWORDS = {k for k in KEYWORDS if " ".join(k) in vocab.MATERIAL_WORDS or k in COLOR_PHRASES}

# Words after which the noun phrase's head has already been said: "Box *with* lid", "Plant pot *for*…".
CUT_WORDS = frozenset({"with", "w", "for", "and", "&", "+", "in", "on", "without", "including"})
# Words that never belong to a product type even when next to its head noun.
_NOT_TYPE_WORDS = frozenset({
    "set", "of", "assorted", "a", "an", "the", "and", "with", "large", "small", "medium", "mini", "big",
    "tall", "short", "xl", "/", "&", "+", "new", "piece", "pieces", "pack",
})


@dataclass(frozen=True)
class Head:
    category: str
    start: int
    end: int
    weak: bool


def _head_in_segment(keys: list[str]) -> Head | None:
    """The category keyword that is the segment's head noun: rightmost before a cut word, longest on ties."""
    # The noun phrase ends at a cut word, or at a number once a word was said ("Mirror cab 2 door").
    cut = len(keys)
    for i, key in enumerate(keys):
        number_after_words = key.isdigit() and any(k.isalpha() and k not in _NOT_TYPE_WORDS for k in keys[:i])
        if i and (key in CUT_WORDS or number_after_words):
            cut = i
            break
    matches = []
    for start in range(len(keys)):
        length = KEYWORDS.longest_at(keys, start)
        if length:
            phrase = tuple(keys[start : start + length])
            matches.append(Head(KEYWORDS[phrase], start, start + length, phrase in _WEAK_KEYWORDS))
    if not matches:
        return None
    # Before the cut; a keyword spanning the cut ("jar with lid", "hat and coat stand") counts too.
    in_head = [m for m in matches if m.start < cut] or matches
    strong = [m for m in in_head if not m.weak]
    return max(strong or in_head, key=lambda m: (m.end, m.end - m.start))


def choose_head(segments: list[list[str]]) -> tuple[int, Head] | None:
    """First segment with a strong head keyword; failing that the first with a weak one."""
    heads = [(i, _head_in_segment(keys)) for i, keys in enumerate(segments)]
    for want_weak in (False, True):
        for i, head in heads:
            if head is not None and head.weak == want_weak:
                return i, head
    return None


def type_phrase(tokens: list[Token], head: Head) -> str:
    """The head keyword plus up to two noun-like words before it ("sea urchin vase", "queen chess piece")."""
    start = head.start
    while start > 0 and head.start - start < 2:
        key = tokens[start - 1].key
        if (
            key in _NOT_TYPE_WORDS or key.isdigit() or key in SINGLE_COLOR_WORDS or key in vocab.STYLE_WORDS
            or (key,) in MATERIAL_PHRASES or (key,) in MODIFIER_PHRASES or key in CUT_WORDS
        ):
            break
        start -= 1
    return " ".join(t.surface for t in tokens[start : head.end])


def type_column_phrase(tokens: list[Token], head: Head | None) -> str:
    """A type column already names the type: keep it up to the first cut word, minus "set of N".

    A head keyword that spans the cut stays whole ("hat and coat stand", "jar with lid").
    """
    keys = [t.key for t in tokens]
    end = next((i for i, k in enumerate(keys) if i and k in CUT_WORDS), len(keys))
    if head is not None and head.start < end:
        end = max(end, head.end)
    for i in range(end):
        if keys[i] == "set" and i + 1 < end and keys[i + 1] == "of":
            end = i
            break
    return " ".join(t.surface for t in tokens[:end]) or " ".join(t.surface for t in tokens)
