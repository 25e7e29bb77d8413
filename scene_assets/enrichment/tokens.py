"""Cleaning product text and cutting it into segments of tokens (abbreviations expanded, glued words split)."""

from __future__ import annotations

import re
import unicodedata

from scene_assets import vocabulary as vocab
from scene_assets.enrichment.category import CUT_WORDS, KEYWORDS
from scene_assets.enrichment.phrases import SINGLE_COLOR_WORDS, Token, phrase_words

_CHAR_MAP = str.maketrans({
    "\u201d": '"', "\u201c": '"', "\u2033": '"', "\u02ba": '"', "\u2019": "'", "\u2018": "'",
    "\u2032": "'", "\u00d7": "x", "\u2013": "-", "\u2014": "-", "\u00a0": " ",
})

# Scraped-page furniture that describes the shop, not the product: the link text is cut wherever it
# appears, sentences about what is sold separately, guarantees and recommended bulbs are dropped whole.
_BOILERPLATE_PHRASE = re.compile(r"view more product information", re.IGNORECASE)
_BOILERPLATE_SENTENCE_MARKERS = ("sold separately", "guarantee", "ikea recommends")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WHITESPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_CHAR_MAP)
    if not text.isascii():
        # Strip accents so "papier mâché" meets the vocabulary's "papier mache".
        text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    text = _BOILERPLATE_PHRASE.sub(" ", text)
    lowered = text.lower()
    if any(marker in lowered for marker in _BOILERPLATE_SENTENCE_MARKERS):
        text = " ".join(
            sentence for sentence in _SENTENCE_END.split(text)
            if not any(marker in sentence.lower() for marker in _BOILERPLATE_SENTENCE_MARKERS)
        )
    return _WHITESPACE.sub(" ", text).strip()


def is_merchant_style(text: str) -> bool:
    """All-capitals lines are merchant strings: bare numbers are inches, IVY means ivory."""
    return any(ch.isalpha() for ch in text) and not any(ch.islower() for ch in text)


_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[/+&-]")
_SEGMENT_SPLIT = re.compile(r"[,;:()\[\]\"|!?]+|\s-\s|(?<=[a-z])\.(?=\s|$)", re.IGNORECASE)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|[;:()\[\]\"|]+")

# Glued words in merchant strings: "LIGHTBLUE", "GRAYGREEN", "NATURALWOOD", "GOLDEDGE" (colour + word)
# and "URCHINVASE", "DOGFIGURINE", "TEMPLEJAR" (word + head noun).
_GLUE_LEFT = SINGLE_COLOR_WORDS | {m for m in vocab.COLOR_MODIFIERS if " " not in m} | {"off"}
_GLUE_RIGHT_AFTER_COLOR = SINGLE_COLOR_WORDS | {k for k in vocab.MATERIAL_WORDS if " " not in k} | {"ombre", "edge"}
_GLUE_HEAD_NOUNS = ("figurine", "covered", "vase", "jar", "orb", "bowl")

_KNOWN_WORDS = (
    phrase_words(vocab.COLOR_WORDS) | phrase_words(vocab.MATERIAL_WORDS) | phrase_words(vocab.STYLE_WORDS)
    | phrase_words(" ".join(k) for k in KEYWORDS) | set(vocab.ABBREVIATIONS) | phrase_words(vocab.COLOR_MODIFIERS)
)


def _split_glued(word: str, merchant_style: bool) -> list[str]:
    """Split a glued word only into known parts; a word that is itself known stays whole."""
    if word in _KNOWN_WORDS or not word.isalpha() or len(word) < 6:
        return [word]
    for cut in range(3, len(word) - 2):
        left, right = word[:cut], word[cut:]
        if left in _GLUE_LEFT and right in _GLUE_RIGHT_AFTER_COLOR:
            return [left, right]
    if merchant_style:
        for head in _GLUE_HEAD_NOUNS:
            if word.endswith(head) and len(word) - len(head) >= 3:
                return [*_split_glued(word[: -len(head)], merchant_style), head]
    return [word]


def _tokens(segment: str, merchant_style: bool) -> list[Token]:
    tokens: list[Token] = []
    after_hyphen = False
    for raw in _TOKEN.findall(segment.lower()):
        if raw == "-":  # "Black-brown", "Wash-stand": hyphens join words, read them as spaces
            after_hyphen = True
            continue
        joined, after_hyphen = after_hyphen, False
        if merchant_style and raw in vocab.MERCHANT_CODES:
            continue
        key = raw[:-2] if raw.endswith("'s") else raw.replace("'", "")
        if joined and key in CUT_WORDS:
            # "Add-on unit", "Built-in extractor hood": part of a compound, not "with/in/on" that
            # ends the noun phrase.
            tokens.append(Token("-" + key, raw))
            continue
        expansion = vocab.ABBREVIATIONS.get(key)
        if expansion and (merchant_style or key not in vocab.UPPERCASE_ONLY_ABBREVIATIONS):
            tokens.extend(Token(word, word) for word in expansion.split())
            continue
        parts = _split_glued(key, merchant_style)
        if len(parts) == 1:
            tokens.append(Token(key, raw))
        else:
            tokens.extend(Token(part, part) for part in parts)
    return tokens


def split_segments(text: str, source: str, merchant_style: bool) -> list[list[Token]]:
    if source == "type":
        # In IKEA type names a comma without a space means "or": "Floor,reading lamp", "Ceiling,wall lamp".
        text = re.sub(r",(?=\S)", " ", text)
    elif source == "color":
        text = text.replace(",", ", ")
    splitter = _SENTENCE_SPLIT if source == "prose" else _SEGMENT_SPLIT
    segments = [_tokens(part, merchant_style) for part in splitter.split(text)]
    return [segment for segment in segments if segment]
