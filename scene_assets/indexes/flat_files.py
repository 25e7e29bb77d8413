"""The flat/IVF kind on disk: ``index.faiss`` + ``manifest.json`` in one folder (``save_index``,
``load_index``: sha256, size, count, dim and id hash checked, errors naming the file) and
``check_index``, the comparison of a saved index with the vectors it should hold."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from scene_assets.indexes import store
from scene_assets.indexes.errors import FingerprintMismatchError, IdCollisionError, IndexCorruptError, VectorIndexError
from scene_assets.indexes.flat import apply_search_defaults, factory_string, index_ids, index_kind, is_gpu, is_mmapped
from scene_assets.indexes.flat_spec import IndexSpec
from scene_assets.indexes.ids import IdLookup, assign_ids, ids_sha256
from scene_assets.indexes.vectors import bad_rows, describe_rows

INDEX_FILE = "index.faiss"
MANIFEST_FILE = store.MANIFEST_FILE
MANIFEST_FORMAT = 1
# Indexes at least this large are memory-mapped by ``load_index(mmap=None)``. 2 GiB keeps the 1M x 1280
# IVF-SQ8 scene index (1.3 GB) in RAM, as its search budget was timed: memory-mapped lists searched
# 8.1 ms per scene there, in RAM 6.0 (#21, 30 region queries, one thread).
DEFAULT_MMAP_THRESHOLD_BYTES = 2 << 30


# --------------------------------------------------------------------------------------------
# save / load


def save_index(index: faiss.Index, directory: Path | str, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``index.faiss`` + ``manifest.json`` into ``directory`` atomically.

    ``manifest`` comes from the caller and must contain ``encoder_fingerprint``; it should contain
    ``product_ids`` (needed to map results back after loading; checked against the index ids),
    ``spec`` (IndexSpec or dict) and ``build_seconds``; other keys are kept as-is. Computed fields
    are added: dim, count, index_factory, index_kind, faiss_version, index_sha256, index_bytes,
    ids_sha256, saved_at. Both files are written to temp files in ``directory`` and moved into
    place with ``os.replace``, the manifest last, so a reader sees either the old pair, the new
    pair, or (between the two renames) a new index whose sha256 does not match the old manifest,
    which ``load_index`` rejects.

    Returns the manifest as written.
    """
    if "encoder_fingerprint" not in manifest or not manifest["encoder_fingerprint"]:
        raise ValueError("save_index: manifest must contain a non-empty 'encoder_fingerprint'")
    if is_mmapped(index):
        raise VectorIndexError("save_index: refusing to save a memory-mapped index (load with mmap=False)")
    cpu_index = faiss.index_gpu_to_cpu(index) if is_gpu(index) else index

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ids = index_ids(cpu_index)
    out: dict[str, Any] = dict(manifest)
    spec = out.get("spec")
    if isinstance(spec, IndexSpec):
        out["spec"] = spec.to_dict()
    pids = out.get("product_ids")
    if pids is not None:
        pids = list(pids)
        pid_ints = assign_ids(pids)
        if pid_ints.size != ids.size or not np.array_equal(np.sort(pid_ints), np.sort(ids)):
            raise ValueError(
                f"save_index: manifest product_ids ({len(pids)}) do not match the {ids.size} ids in the index"
            )
        out["product_ids"] = [pids[i] for i in np.argsort(pid_ints, kind="stable")]
    spec_factory = (out.get("spec") or {}).get("factory") if isinstance(out.get("spec"), Mapping) else None
    out.update(
        format=MANIFEST_FORMAT,
        dim=int(cpu_index.d),
        count=int(cpu_index.ntotal),
        index_factory=factory_string(cpu_index, spec_factory),
        index_kind=index_kind(cpu_index),
        faiss_version=faiss.__version__,
        ids_sha256=ids_sha256(ids),
        saved_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )

    with store.replace_together(directory) as stage:
        tmp_index = stage(INDEX_FILE)
        faiss.write_index(cpu_index, str(tmp_index))
        store.fsync_file(tmp_index)
        out["index_sha256"] = store.sha256_of_file(tmp_index)
        out["index_bytes"] = os.path.getsize(tmp_index)
        store.write_synced(stage(MANIFEST_FILE), store.manifest_bytes(out))
    return out


def load_index(
    directory: Path | str,
    *,
    expected_fingerprint: str | None = None,
    mmap: bool | None = False,
    mmap_threshold_bytes: int = DEFAULT_MMAP_THRESHOLD_BYTES,
    verify_ids: bool = True,
) -> tuple[faiss.Index, dict[str, Any]]:
    """Load and verify an index saved by ``save_index``. Returns ``(index, manifest)``.

    Raises ``IndexCorruptError`` (naming the file) when a file is missing, the sha256 / size / count
    / dim / id hash of ``index.faiss`` does not match the manifest, or FAISS cannot parse it; and
    ``FingerprintMismatchError`` (an ``IndexCorruptError``) if ``expected_fingerprint`` differs from
    the manifest's ``encoder_fingerprint``.

    ``mmap=True`` memory-maps the vector data (IVF lists or flat codes) instead of reading it into
    RAM; ``mmap=None`` does so when the file is at least ``mmap_threshold_bytes``. Memory-mapped
    indexes are read-only: ``update_index`` refuses them.
    """
    directory = Path(directory)
    index_path, manifest_path = directory / INDEX_FILE, directory / MANIFEST_FILE
    last_err: Exception | None = None
    for _attempt in range(3):  # retry if a writer replaced the files while we were reading
        manifest = store.read_manifest(manifest_path)
        if expected_fingerprint is not None and manifest["encoder_fingerprint"] != expected_fingerprint:
            raise FingerprintMismatchError(
                f"{manifest_path}: index was built with encoder fingerprint "
                f"{manifest['encoder_fingerprint']!r}, expected {expected_fingerprint!r}; rebuild the index"
            )
        try:
            st = os.stat(index_path)
        except FileNotFoundError:
            raise IndexCorruptError(f"{index_path}: index file missing") from None
        if "index_bytes" in manifest and st.st_size != manifest["index_bytes"]:
            last_err = IndexCorruptError(
                f"{index_path}: size {st.st_size} B != {manifest['index_bytes']} B in manifest "
                "(half-written, truncated or replaced file)"
            )
            if _file_changed(index_path, st) or _manifest_changed(manifest_path, manifest):
                continue
            raise last_err
        digest = store.sha256_of_file(index_path)
        if digest != manifest["index_sha256"]:
            last_err = IndexCorruptError(
                f"{index_path}: sha256 {digest[:16]}... does not match manifest "
                f"{str(manifest['index_sha256'])[:16]}... (half-written or corrupted file)"
            )
            if _file_changed(index_path, st) or _manifest_changed(manifest_path, manifest):
                continue
            raise last_err

        use_mmap = mmap if mmap is not None else st.st_size >= mmap_threshold_bytes
        flags = 0
        if use_mmap:
            flags = faiss.IO_FLAG_MMAP_IFC if manifest.get("index_kind") == "flat" else faiss.IO_FLAG_MMAP
        try:
            index = faiss.read_index(str(index_path), flags)
        except RuntimeError as e:
            raise IndexCorruptError(f"{index_path}: FAISS cannot read the index: {str(e).splitlines()[0]}") from None
        if _file_changed(index_path, st):
            last_err = IndexCorruptError(f"{index_path}: replaced while loading")
            continue
        break
    else:
        raise last_err or IndexCorruptError(f"{index_path}: could not load a consistent index")

    if int(index.ntotal) != int(manifest["count"]):
        raise IndexCorruptError(f"{index_path}: holds {index.ntotal} vectors, manifest says {manifest['count']}")
    if int(index.d) != int(manifest["dim"]):
        raise IndexCorruptError(f"{index_path}: dimension {index.d}, manifest says {manifest['dim']}")
    if verify_ids and "ids_sha256" in manifest and ids_sha256(index_ids(index)) != manifest["ids_sha256"]:
        raise IndexCorruptError(f"{index_path}: ids in the index do not match ids_sha256 in the manifest")
    spec = manifest.get("spec") or {}
    if isinstance(spec, Mapping):
        apply_search_defaults(index, spec.get("search_params") or {})
    return index, manifest


def _file_changed(path: Path, st: os.stat_result) -> bool:
    """True if ``path`` was replaced or rewritten since ``st`` was taken (a concurrent save)."""
    try:
        now = os.stat(path)
    except OSError:
        return True
    return (now.st_ino, now.st_size, now.st_mtime_ns) != (st.st_ino, st.st_size, st.st_mtime_ns)


def _manifest_changed(path: Path, manifest: Mapping[str, Any]) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("index_sha256") != manifest.get("index_sha256")
    except (OSError, ValueError):
        return True


# --------------------------------------------------------------------------------------------
# checks


def check_index(
    index: faiss.Index,
    manifest: Mapping[str, Any],
    vectors: np.ndarray | None,
    product_ids: Sequence[str],
    *,
    expected_fingerprint: str | None = None,
    sample_size: int = 64,
    min_cosine: float = 0.98,
) -> list[str]:
    """Problems (human-readable strings; empty list = healthy) between an index, its manifest and
    the embedding table it should contain (``vectors[i]`` <-> ``product_ids[i]``).

    Checks: counts (index / manifest / table), dim, NaN/inf or zero vectors in the table, id
    collisions, id sets equal (names missing/extra products), manifest id hash, encoder fingerprint,
    and for a seeded sample of products that the stored vector still matches the table
    (cosine >= ``min_cosine``; catches an index that was not updated after re-encoding).
    """
    problems: list[str] = []
    product_ids = list(product_ids)
    n_index = int(index.ntotal)

    fp = manifest.get("encoder_fingerprint")
    if not fp:
        problems.append("manifest has no encoder_fingerprint")
    elif expected_fingerprint is not None and fp != expected_fingerprint:
        problems.append(f"encoder fingerprint mismatch: index {fp!r}, expected {expected_fingerprint!r}")
    if "count" in manifest and int(manifest["count"]) != n_index:
        problems.append(f"manifest count {manifest['count']} != index ntotal {n_index}")
    if "dim" in manifest and int(manifest["dim"]) != int(index.d):
        problems.append(f"manifest dim {manifest['dim']} != index dim {index.d}")
    if len(product_ids) != n_index:
        problems.append(f"index holds {n_index} vectors but the table has {len(product_ids)} products")

    x = None
    if vectors is not None:
        x = np.asarray(vectors)
        if x.ndim != 2 or x.shape[1] != index.d:
            problems.append(f"vectors have shape {x.shape}, index dim is {index.d}")
            x = None
        elif x.shape[0] != len(product_ids):
            problems.append(f"{x.shape[0]} vectors but {len(product_ids)} product ids")
            x = None
        else:
            nonfinite, zero = bad_rows(x)
            if nonfinite.size:
                problems.append(f"{nonfinite.size} vector(s) with NaN/inf: {describe_rows(nonfinite, product_ids)}")
            if zero.size:
                problems.append(f"{zero.size} zero vector(s): {describe_rows(zero, product_ids)}")

    try:
        want = assign_ids(product_ids)
    except IdCollisionError as e:
        problems.append(f"product id problem: {e}")
        return problems
    have = index_ids(index)
    if have.size != np.unique(have).size:
        problems.append(f"index holds {have.size - np.unique(have).size} duplicate id(s)")
    missing = np.flatnonzero(~np.isin(want, have))
    extra = np.setdiff1d(have, want)
    if missing.size:
        problems.append(f"{missing.size} product(s) missing from the index: {describe_rows(missing, product_ids)}")
    if extra.size:
        try:
            names = IdLookup.from_manifest(manifest).to_product_ids(extra[:5])
            shown = ", ".join(repr(p) if p is not None else str(int(i)) for p, i in zip(names, extra[:5]))
        except (ValueError, IdCollisionError):
            shown = ", ".join(str(int(i)) for i in extra[:5])
        problems.append(f"{extra.size} id(s) in the index are not in the table (stale products): {shown}"
                        + (" ..." if extra.size > 5 else ""))
    if "ids_sha256" in manifest and manifest["ids_sha256"] != ids_sha256(have):
        problems.append("manifest ids_sha256 does not match the ids in the index")

    if x is not None and sample_size > 0 and not missing.size and not _has_bad_vector_problem(problems):
        rng = np.random.default_rng(0)
        rows = rng.choice(len(product_ids), size=min(sample_size, len(product_ids)), replace=False)
        stale = []
        for r in np.sort(rows):
            try:
                stored = np.asarray(index.reconstruct(int(want[r])), dtype=np.float32)
            except RuntimeError:
                break  # index type cannot reconstruct by id: skip this check
            v = np.asarray(x[r], dtype=np.float32)
            cos = float(stored @ v) / (float(np.linalg.norm(stored) * np.linalg.norm(v)) or 1.0)
            if cos < min_cosine:
                stale.append(int(r))
        if stale:
            problems.append(
                f"{len(stale)} of {rows.size} sampled products have a stored vector that differs from the "
                f"table (cosine < {min_cosine}): {describe_rows(np.array(stale), product_ids)}"
            )
    return problems


def _has_bad_vector_problem(problems: Sequence[str]) -> bool:
    return any("NaN/inf" in p or "zero vector" in p for p in problems)
