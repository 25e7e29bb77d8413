"""Errors of the index package (both kinds); each message names the file or product concerned."""


class VectorIndexError(Exception):
    """Base class for errors raised by the index package."""


class IdCollisionError(VectorIndexError, ValueError):
    """Two different product ids hash to the same int64 id (or one product id is repeated)."""


class IndexCorruptError(VectorIndexError):
    """The saved index is missing, half-written, corrupted or does not match its manifest."""


class FingerprintMismatchError(IndexCorruptError):
    """The index was built with a different encoder than the caller expects."""


class RebuildRequiredError(VectorIndexError):
    """The index type cannot apply an incremental update; rebuild it with ``build_index``."""
