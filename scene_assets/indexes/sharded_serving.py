"""The sharded kind served: ``open_merged`` opens a merged folder with its inverted lists
memory-mapped read-only (they live in the page cache, not in the process heap); ``ServingIndex``
searches it (a ``searcher.VectorSearcher``) and maps int ids back to product ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss
import numpy as np

from scene_assets.indexes import flat, store
from scene_assets.indexes.errors import FingerprintMismatchError, IndexCorruptError
from scene_assets.indexes.sharded_files import IDS_FILE, INDEX_FILE, IVFDATA_FILE, MANIFEST_FILE, PIDS_FILE, read_manifest


class ServingIndex:
    """The merged index opened for search. With ``mmap=True`` the inverted lists and the id lookup
    stay in their files (mapped read-only, paged in on demand and shared with other processes),
    so the process's own memory holds only the quantizers."""

    def __init__(self, directory: Path, index: faiss.Index, manifest: dict[str, Any], ids: np.ndarray,
                 pids: np.ndarray, mmap: bool):
        self.directory = directory
        self.index = index
        self.manifest = manifest
        self.mmap = mmap
        self._ids = ids
        self._pids = pids
        self._segments = [tuple(s) for s in manifest["segments"]]

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def nprobe(self) -> int:
        return int(faiss.extract_index_ivf(self.index).nprobe)

    def product_ids(self, int_ids: np.ndarray) -> np.ndarray:
        """Object array shaped like ``int_ids``: the product id, or None for -1 / unknown ids."""
        int_ids = np.asarray(int_ids, dtype=np.int64)
        wanted = int_ids.ravel()
        out = np.full(wanted.shape, None, dtype=object)
        for a, b in self._segments:
            if b <= a:
                continue
            seg = self._ids[a:b]
            pos = np.minimum(np.searchsorted(seg, wanted), b - a - 1)
            found = np.flatnonzero(seg[pos] == wanted)
            if found.size:
                out[found] = [b.decode("utf-8") for b in self._pids[a + pos[found]]]
        return out.reshape(int_ids.shape)

    @property
    def lookup_int_ids(self) -> np.ndarray:
        """Every indexed product's int id, in the lookup's order (memory-mapped with ``mmap=True``)."""
        return self._ids

    @property
    def lookup_product_ids(self) -> np.ndarray:
        """Every indexed product id as utf-8 bytes, in the lookup's order (aligned with :attr:`lookup_int_ids`)."""
        return self._pids

    def all_product_ids(self) -> list[str]:
        """Every indexed product id (in the lookup's order)."""
        return [b.decode("utf-8") for b in self._pids]

    def search_ids(self, queries: np.ndarray, k: int, *, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores [nq, k], int ids [nq, k]); queries are validated and L2-normalised."""
        return flat.search(self.index, queries, k, nprobe=nprobe)

    def search(self, queries: np.ndarray, k: int, *, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores [nq, k], product ids [nq, k] as an object array, None where fewer than k found)."""
        scores, ids = self.search_ids(queries, k, nprobe=nprobe)
        return scores, self.product_ids(ids)


def _lists_to_ram(index: faiss.Index) -> None:
    """Replace memory-mapped on-disk lists by in-memory ArrayInvertedLists (copy)."""
    ivf = faiss.extract_index_ivf(index)
    src = ivf.invlists
    ram = faiss.ArrayInvertedLists(ivf.nlist, ivf.code_size)
    for lst in range(ivf.nlist):
        n = src.list_size(lst)
        if n:
            ram.add_entries(lst, n, src.get_ids(lst), src.get_codes(lst))
    ivf.replace_invlists(ram, True)
    ram.this.disown()


def open_merged(
    directory: Path | str,
    *,
    mmap: bool = True,
    verify: str = "sha256",
    expected_fingerprint: str | None = None,
    nprobe: int | None = None,
    prefetch_threads: int = 0,
) -> ServingIndex:
    """Open a merged index for search. ``mmap=True`` maps ``index.ivfdata`` read-only
    (``IO_FLAG_ONDISK_SAME_DIR | IO_FLAG_READ_ONLY``) and the id lookup with ``np.load(mmap_mode="r")``;
    ``mmap=False`` copies the lists and lookup into RAM. ``verify``: ``"sha256"`` (every file, reads
    them once: they are then in the page cache), ``"size"`` or ``"none"``. ``prefetch_threads``:
    FAISS's on-disk lists can start threads on every search that page the probed lists in ahead of
    the scan (its default: 32). That pays off when the lists sit on a cold disk, and costs ~0.25 ms
    a query when they are in the page cache (measured at 1M vectors: 0.55 vs 0.31 ms CPU), so the
    default here is 0; set it when the index is much larger than RAM. Raises
    ``IndexCorruptError`` naming the bad file, ``FingerprintMismatchError`` for another encoder."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest.get("stage") != "merged":
        raise IndexCorruptError(f"{directory / MANIFEST_FILE}: not a merged index manifest")
    if expected_fingerprint is not None and manifest["encoder_fingerprint"] != expected_fingerprint:
        raise FingerprintMismatchError(
            f"{directory / MANIFEST_FILE}: built with encoder fingerprint {manifest['encoder_fingerprint']!r}, "
            f"expected {expected_fingerprint!r}; rebuild the index"
        )
    store.verify_files(directory, manifest, mode=verify)
    path = directory / INDEX_FILE
    flags = faiss.IO_FLAG_READ_ONLY
    if Path(str(manifest.get("ivfdata_path", ""))).resolve() != (directory / IVFDATA_FILE).resolve():
        flags |= faiss.IO_FLAG_ONDISK_SAME_DIR  # the folder was moved or copied: find index.ivfdata beside it
    try:
        index = faiss.read_index(str(path), flags)
    except RuntimeError as e:
        raise IndexCorruptError(f"{path}: FAISS cannot read it: {str(e).splitlines()[0]}") from None
    if int(index.ntotal) != int(manifest["count"]) or int(index.d) != int(manifest["dim"]):
        raise IndexCorruptError(f"{path}: {index.ntotal} x {index.d}, manifest says {manifest['count']} x {manifest['dim']}")
    ivf = faiss.extract_index_ivf(index)
    lists = faiss.downcast_InvertedLists(ivf.invlists)
    if not isinstance(lists, faiss.OnDiskInvertedLists):
        raise IndexCorruptError(f"{path}: expected on-disk inverted lists")
    lists.prefetch_nthread = int(prefetch_threads)
    ivf.nprobe = int(nprobe if nprobe is not None else manifest["nprobe"])
    if mmap:
        ids = np.load(directory / IDS_FILE, mmap_mode="r")
        pids = np.load(directory / PIDS_FILE, mmap_mode="r")
    else:
        _lists_to_ram(index)
        ids = np.load(directory / IDS_FILE)
        pids = np.load(directory / PIDS_FILE)
    if ids.shape != (manifest["count"],) or pids.shape != (manifest["count"],):
        raise IndexCorruptError(f"{directory}: id lookup holds {ids.shape[0]} ids, manifest says {manifest['count']}")
    return ServingIndex(directory, index, manifest, ids, pids, mmap)


