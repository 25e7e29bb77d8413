"""Small file helpers shared by the catalog, the encoders and the index (no heavy imports)."""

from __future__ import annotations

import hashlib
import os


def sha256_of_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """sha256 of a file, read in chunks (catalogs, weights and indexes can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()
