"""Hashes behind encoder fingerprints: weight files and model folders, library versions, the digest."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import threading
from pathlib import Path
from typing import Any, Mapping

from ..indexes.store import sha256_of_file

FINGERPRINT_LEN = 16
# keys of fingerprint_info() that are informative but machine-specific: not hashed
UNHASHED_KEYS = ("source_paths",)

_HASH_CACHE: dict[tuple[str, int, int], str] = {}
_HASH_LOCK = threading.Lock()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, memoised per (path, size, mtime)."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    with _HASH_LOCK:
        if key in _HASH_CACHE:
            return _HASH_CACHE[key]
    digest = sha256_of_file(p)
    with _HASH_LOCK:
        _HASH_CACHE[key] = digest
    return digest


def dir_sha256(path: str | os.PathLike) -> str:
    """sha256 over (relative path, file sha256) of every model file in a directory
    (docs such as README.md / .gitattributes are ignored)."""
    root = Path(path)
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = f.relative_to(root).as_posix()
        if rel in ("README.md", ".gitattributes") or "/." in f"/{rel}" or "__pycache__" in rel:
            continue
        h.update(rel.encode())
        h.update(file_sha256(f).encode())
    return h.hexdigest()


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries whose numerics determine embeddings (no imports needed)."""
    out: dict[str, str | None] = {}
    for dist in ("torch", "torchvision", "open_clip_torch", "timm", "transformers",
                 "sentence-transformers", "numpy", "pillow"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def digest(info: Mapping[str, Any]) -> str:
    """Short stable digest of a fingerprint_info() mapping (its unhashed keys left out)."""
    hashed = {k: v for k, v in info.items() if k not in UNHASHED_KEYS}
    blob = json.dumps(hashed, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:FINGERPRINT_LEN]
