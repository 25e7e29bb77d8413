"""The sharded index's folders on disk: file names, manifests with a ``files`` table (see
``store``), the sorted id lookup files and the checked read of a small index file.

Files (``root`` is one folder per encoder fingerprint)::

    root/trained/<params_key>/      trained.faiss, manifest.json                          train_index()
    root/shards/<shard_key>/<ver>/  index.faiss, ids.npy, product_ids.npy, manifest.json  add_shard()
    root/merged/<ver>/              index.faiss, index.ivfdata, ids.npy, product_ids.npy,
                                    manifest.json                                         merge_shards()
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from scene_assets.indexes import store
from scene_assets.indexes.errors import IdCollisionError, IndexCorruptError

FORMAT = 1
TRAINED_FILE = "trained.faiss"
INDEX_FILE = "index.faiss"
IVFDATA_FILE = "index.ivfdata"
IDS_FILE = "ids.npy"
PIDS_FILE = "product_ids.npy"
MANIFEST_FILE = store.MANIFEST_FILE


def read_manifest(directory: Path | str) -> dict[str, Any]:
    """The folder's manifest, checked for the fields every manifest here has."""
    manifest = store.read_manifest(Path(directory) / MANIFEST_FILE)
    if "files" not in manifest or not isinstance(manifest["files"], dict):
        raise IndexCorruptError(f"{Path(directory) / MANIFEST_FILE}: manifest lacks the 'files' table")
    return manifest


def read_index_verified(path: Path, sha256: str) -> faiss.Index:
    """Read a (small) index file into memory, check its sha256 on the bytes read, deserialize."""
    data = store.read_verified_bytes(path, sha256)
    try:
        return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    except RuntimeError as e:
        raise IndexCorruptError(f"{path}: FAISS cannot read it: {str(e).splitlines()[0]}") from None




def write_lookup(directory: Path, ids: np.ndarray, pids: Sequence[str]) -> tuple[np.ndarray, int]:
    """ids.npy (sorted int64) and product_ids.npy (fixed-width UTF-8 bytes in the same order)."""
    order = np.argsort(ids, kind="stable")
    ids_sorted = np.ascontiguousarray(ids[order])
    encoded = np.array([p.encode("utf-8") for p in pids], dtype=object)[order]
    width = max((len(b) for b in encoded), default=1) or 1
    np.save(directory / IDS_FILE, ids_sorted)
    np.save(directory / PIDS_FILE, encoded.astype(f"S{width}"))
    return ids_sorted, width


def check_unique_sorted(ids_sorted: np.ndarray, pids_sorted: np.ndarray, where: str) -> None:
    dup = np.flatnonzero(ids_sorted[1:] == ids_sorted[:-1])
    if dup.size:
        shown = []
        for j in dup[:5]:
            a, b = pids_sorted[j].decode(), pids_sorted[j + 1].decode()
            shown.append(f"product_id {a!r} appears more than once" if a == b
                         else f"product ids {a!r} and {b!r} collide on int id {int(ids_sorted[j])}")
        raise IdCollisionError(f"{where}: " + "; ".join(shown) + (f" (and {dup.size - 5} more)" if dup.size > 5 else ""))


