"""Errors an encoder raises with a message that says what to do next."""

from __future__ import annotations


class EncoderLoadError(RuntimeError):
    """A model or its weights could not be loaded; the message says what to do next."""


class TextOnlyEncoderError(TypeError):
    """Raised when asking a text-only encoder for image embeddings."""
