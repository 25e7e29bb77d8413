"""The sharded IVF-PQ kind, built past memory: train once, add per catalog shard, merge on disk.

Plain Python (no Dagster). Like the flat kind: vectors are L2-normalised and compared by inner
product, and product ids are stored as the same stable int63 ids (``ids.product_int_id``), so a
product has one int id whichever shard or index holds it. Folder layout in ``sharded_files``;
parameters in ``sharded_params``; serving in ``sharded_serving``.

* ``train_index``: trained once on a seeded sample read from the shard files (only the sampled rows'
  row groups, never the whole catalog in memory) -> the "trained empty index". With ``centre`` the
  vectors are centred on the catalog mean first (streamed over the shards), as the scene index
  centres them: the mean is saved with the trained index and every shard is centred on it.
* ``add_shard``: a copy of the trained index plus one shard's vectors, streamed in chunks. The
  folder is named by (trained index sha256, shard content digest): an unchanged shard is found and
  skipped, a changed shard gets a new folder, and a retrained index invalidates every shard.
* ``merge_shards``: the shards' inverted lists concatenated into one ``OnDiskInvertedLists`` file
  (``index.ivfdata``) in a temp folder renamed into place; the folder is named by the shards it holds.

Every file is listed in its folder's manifest with its sha256 and size; a mismatch raises
``IndexCorruptError`` naming the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from scene_assets.indexes import store
from scene_assets.indexes.errors import IdCollisionError, IndexCorruptError, VectorIndexError
from scene_assets.indexes.ids import assign_ids, ids_sha256
from scene_assets.indexes.sharded_files import (
    FORMAT,
    IDS_FILE,
    INDEX_FILE,
    IVFDATA_FILE,
    MANIFEST_FILE,
    PIDS_FILE,
    TRAINED_FILE,
    check_unique_sorted,
    read_index_verified,
    read_manifest,
    write_lookup,
)
from scene_assets.indexes.sharded_params import PQ_TRAIN_POINTS_PER_CENTROID, ShardedIndexParams, choose_params, tune_nprobe
from scene_assets.indexes.vector_sources import CHUNK_ROWS, VectorSource, sample_vectors, sources_mean, vector_dim
from scene_assets.indexes.vectors import center_and_normalize_in_place, prepare, validate_vectors
from scene_assets.locking import exclusive

MEAN_FILE = "catalog_mean.npy"


@dataclass
class TrainedIndex:
    directory: Path
    manifest: dict[str, Any]
    trained: bool  # False: an existing trained index was reused
    seconds: float = 0.0

    @property
    def path(self) -> Path:
        return self.directory / TRAINED_FILE

    @property
    def sha256(self) -> str:
        return str(self.manifest["index_sha256"])

    @property
    def params(self) -> ShardedIndexParams:
        return ShardedIndexParams.from_dict(self.manifest["params"])

    def load(self) -> faiss.Index:
        """A fresh, empty copy of the trained index (sha256 checked on the bytes read)."""
        return read_index_verified(self.path, self.sha256)

    @property
    def centred(self) -> bool:
        return bool(self.manifest.get("centred"))

    @property
    def catalog_mean(self) -> np.ndarray | None:
        """The vector every shard is centred on (None: not centred), checked against its sha256."""
        if not self.centred:
            return None
        entry = self.manifest["files"][MEAN_FILE]
        store.verify_files(self.directory, {"files": {MEAN_FILE: entry}}, mode="sha256")
        return np.load(self.directory / MEAN_FILE)


def load_trained(directory: Path | str) -> TrainedIndex:
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest.get("stage") != "trained":
        raise IndexCorruptError(f"{directory / MANIFEST_FILE}: not a trained index manifest")
    return TrainedIndex(directory, manifest, trained=False)


def reuse_reason(trained: TrainedIndex, n_vectors: int, dim: int, fingerprint: str, *, memory_budget_bytes: int,
                 latency_target_ms: float, growth: float = 4.0, centre: bool = False) -> str | None:
    """None if ``trained`` still fits a catalog of ``n_vectors`` (same encoder, dim, budget and
    target; n within ``growth`` x of what it was chosen for; the lists still inside the budget),
    otherwise why it must be retrained. Reusing keeps every shard index valid."""
    p = trained.params
    if trained.manifest.get("encoder_fingerprint") != fingerprint:
        return "the encoder fingerprint changed"
    if p.dim != dim:
        return f"dimension changed ({p.dim} -> {dim})"
    if trained.centred != centre:
        return "centring on the catalog mean was " + ("turned on" if centre else "turned off")
    if p.memory_budget_bytes != memory_budget_bytes or p.latency_target_ms != latency_target_ms:
        return "memory budget or latency target changed"
    if not (p.n_planned / growth <= n_vectors <= p.n_planned * growth):
        return f"catalog size {n_vectors:,} is over {growth:g}x away from the {p.n_planned:,} it was chosen for"
    if n_vectors * p.bytes_per_vector + p.fixed_bytes > memory_budget_bytes:
        return f"{n_vectors:,} x {p.bytes_per_vector} B no longer fits the budget"
    return None


def train_index(
    sources: Sequence[VectorSource],
    root: Path | str,
    params: ShardedIndexParams,
    *,
    fingerprint: str,
    tune: bool = True,
    force: bool = False,
    centre: bool = False,
    vector_space: str | None = None,
) -> TrainedIndex:
    """Train ``params.factory`` once on a seeded sample of ``params.train_size`` vectors from the
    shards and save the empty trained index under ``root/trained/<params.key()>``. With ``tune``,
    nprobe is measured on the sample (``tune_nprobe``). An existing valid trained index with the same
    key and fingerprint is reused unless ``force``; a forced retrain replaces it (and so
    invalidates every shard index built on it). ``centre``: centre the vectors on the catalog mean
    (computed here over every shard, saved as ``catalog_mean.npy``; shards are centred on it when added,
    so the mean stays fixed while this trained index is reused, like the scene index's).
    ``vector_space``: recorded for readers ("trunk" / "joint")."""
    directory = Path(root) / "trained" / params.key()
    with exclusive(directory):
        if not force and (directory / MANIFEST_FILE).is_file():
            with contextlib.suppress(VectorIndexError):
                existing = load_trained(directory)
                if existing.manifest.get("encoder_fingerprint") == fingerprint and existing.centred == centre:
                    existing.load()  # checks the sha256
                    return existing
        started = time.perf_counter()
        mean = sources_mean(sources) if centre else None
        sample, sample_sha = sample_vectors(sources, params.train_size, params.seed, mean)
        if sample.shape[1] != params.dim:
            raise VectorIndexError(f"vectors have dimension {sample.shape[1]}, parameters were chosen for {params.dim}")
        index = faiss.index_factory(params.dim, params.factory, faiss.METRIC_INNER_PRODUCT)
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.seed = params.seed
        pq = getattr(ivf, "pq", None)
        if pq is not None:
            pq.cp.seed = params.seed
            # Each of the m sub-quantizer k-means runs on at most 64 * 256 = 16,384 residuals (faiss
            # wants >= 39 per centroid): PQ training time ~ m x that, whatever the sample size.
            pq.cp.max_points_per_centroid = PQ_TRAIN_POINTS_PER_CENTROID
        timings = {}
        if not params.opq:
            # Coarse k-means first, timed on its own (with OPQ the quantizer must see rotated vectors,
            # so it trains inside index.train); index.train then skips the trained quantizer.
            t0, c0 = time.perf_counter(), time.process_time()
            ivf.train_q1(sample.shape[0], faiss.swig_ptr(sample), False, ivf.metric_type)
            timings.update(coarse_train_seconds=round(time.perf_counter() - t0, 3),
                           coarse_train_cpu_seconds=round(time.process_time() - c0, 3))
        t0, c0 = time.perf_counter(), time.process_time()
        index.train(sample)
        timings.update(encoder_train_seconds=round(time.perf_counter() - t0, 3),
                       encoder_train_cpu_seconds=round(time.process_time() - c0, 3))
        train_s = time.perf_counter() - started
        if tune:
            t0 = time.perf_counter()
            params = tune_nprobe(params, index, sample)
            tune_s = time.perf_counter() - t0
        else:
            tune_s = 0.0
        ivf.nprobe = params.nprobe
        directory.mkdir(parents=True, exist_ok=True)
        with store.replace_together(directory) as stage:
            tmp = stage(TRAINED_FILE)
            faiss.write_index(index, str(tmp))
            store.fsync_file(tmp)
            entry = store.file_entry(tmp)
            files = {TRAINED_FILE: entry}
            if mean is not None:
                mean_tmp = stage(MEAN_FILE)
                with open(mean_tmp, "wb") as f:
                    np.save(f, mean)
                store.fsync_file(mean_tmp)
                files[MEAN_FILE] = store.file_entry(mean_tmp)
            manifest = {
                "format": FORMAT,
                "stage": "trained",
                "encoder_fingerprint": fingerprint,
                "dim": params.dim,
                "count": 0,
                "factory": params.factory,
                "params": params.to_dict(),
                "params_key": params.key(),
                "index_sha256": entry["sha256"],
                "files": files,
                "centred": mean is not None,
                "vector_space": vector_space,
                "sample_size": int(sample.shape[0]),
                "sample_sha256": sample_sha,
                "train_seconds": round(train_s, 3),
                **timings,
                "tune_seconds": round(tune_s, 3),
                "faiss_version": faiss.__version__,
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            store.write_synced(stage(MANIFEST_FILE), store.manifest_bytes(manifest))
        return TrainedIndex(directory, manifest, trained=True, seconds=time.perf_counter() - started)


# --------------------------------------------------------------------------------------------
# shards


@dataclass
class ShardIndex:
    key: str
    directory: Path
    manifest: dict[str, Any]
    added: bool  # False: an up-to-date shard index was found and kept
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return int(self.manifest["count"])


def load_shard(directory: Path | str) -> ShardIndex:
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest.get("stage") != "shard":
        raise IndexCorruptError(f"{directory / MANIFEST_FILE}: not a shard index manifest")
    return ShardIndex(str(manifest["shard_key"]), directory, manifest, added=False)


def shard_version(trained_sha256: str, source_digest: str, mean_sha256: str | None = None) -> str:
    identity = f"{trained_sha256}\n{source_digest}" + (f"\n{mean_sha256}" if mean_sha256 else "")
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def add_shard(
    trained: TrainedIndex,
    source: VectorSource,
    root: Path | str,
    *,
    chunk_rows: int = CHUNK_ROWS,
    keep_versions: int = 2,
) -> ShardIndex:
    """Add one shard's vectors (stable int64 ids from the product ids) to a copy of the trained
    index and save it under ``root/shards/<source.key>/<version>``, version = hash(trained sha256,
    source digest). If that folder already holds a valid shard index the shard is unchanged and is
    kept (``added=False``). A centred trained index centres the shard's vectors on its catalog mean
    (validated raw, then normalised and centred). Memory: the codes of this shard + one chunk of vectors."""
    parent = Path(root) / "shards" / source.key
    with exclusive(parent):
        parent.mkdir(parents=True, exist_ok=True)
        digest = source.digest()
        mean = trained.catalog_mean
        mean_sha = trained.manifest["files"][MEAN_FILE]["sha256"] if mean is not None else None
        version = shard_version(trained.sha256, digest, mean_sha)
        final = parent / version
        if (final / MANIFEST_FILE).is_file():
            with contextlib.suppress(VectorIndexError):
                shard = load_shard(final)
                store.verify_files(final, shard.manifest, mode="size")
                if shard.manifest.get("trained_sha256") == trained.sha256 and shard.manifest.get("source_digest") == digest:
                    return shard
            shutil.rmtree(final, ignore_errors=True)  # damaged: rebuild it
        started = time.perf_counter()
        index = trained.load()
        if index.ntotal:
            raise IndexCorruptError(f"{trained.path}: trained index is not empty ({index.ntotal} vectors)")
        all_ids, all_pids = [], []
        for pids, x in source.chunks(chunk_rows):
            if not len(pids):
                continue
            if x.shape[1] != index.d:
                raise VectorIndexError(f"{source.describe()}: vectors have dimension {x.shape[1]}, index expects {index.d}")
            ids = assign_ids(pids)
            validate_vectors(x, pids, source.describe())
            x = prepare(x, True)
            if mean is not None:
                center_and_normalize_in_place(x, mean)
            index.add_with_ids(x, ids)
            all_ids.append(ids)
            all_pids.extend(pids)
        ids = np.concatenate(all_ids) if all_ids else np.zeros(0, np.int64)
        add_s = time.perf_counter() - started
        with store.new_version(parent, version, keep_versions=keep_versions) as tmp:
            faiss.write_index(index, str(tmp / INDEX_FILE))
            del index
            ids_sorted, width = write_lookup(tmp, ids, all_pids)
            check_unique_sorted(ids_sorted, np.load(tmp / PIDS_FILE, mmap_mode="r"), f"shard {source.key} ({source.describe()})")
            files = {name: store.file_entry(tmp / name) for name in (INDEX_FILE, IDS_FILE, PIDS_FILE)}
            manifest = {
                "format": FORMAT,
                "stage": "shard",
                "shard_key": source.key,
                "version": version,
                "encoder_fingerprint": trained.manifest["encoder_fingerprint"],
                "dim": int(trained.params.dim),
                "count": int(ids.size),
                "factory": trained.params.factory,
                "ids_sha256": ids_sha256(ids),
                "index_sha256": files[INDEX_FILE]["sha256"],
                "files": files,
                "trained_sha256": trained.sha256,
                "trained_dir": str(trained.directory),
                "catalog_mean_sha256": mean_sha,
                "source": source.describe(),
                "source_digest": digest,
                "add_seconds": round(add_s, 3),
                "faiss_version": faiss.__version__,
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            store.write_manifest(tmp / MANIFEST_FILE, manifest)
        return ShardIndex(source.key, final, manifest, added=True, seconds=time.perf_counter() - started)


# --------------------------------------------------------------------------------------------
# merge


@dataclass
class MergedIndex:
    directory: Path
    manifest: dict[str, Any]
    merged: bool  # False: this exact set of shards was merged before and is reused
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return int(self.manifest["count"])

    @property
    def bytes(self) -> int:
        return int(sum(e["bytes"] for e in self.manifest["files"].values()))


def merged_version(trained_sha256: str, shards: Sequence[ShardIndex]) -> str:
    parts = [trained_sha256] + [f"{s.key}:{s.manifest['index_sha256']}" for s in sorted(shards, key=lambda s: s.key)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _check_unique_across(shards: Sequence[ShardIndex], bucket_ids: int = 4_000_000) -> None:
    """No int id in two shards. Each shard's ids.npy is sorted, so the id range is cut into buckets
    and each bucket's slices are compared: memory ~ ``bucket_ids`` ids, not the whole catalog."""
    ids = [np.load(s.directory / IDS_FILE, mmap_mode="r") for s in shards]
    total = sum(int(a.size) for a in ids)
    n_buckets = max(1, -(-total // bucket_ids))
    edges = [(i * (1 << 63)) // n_buckets for i in range(n_buckets + 1)]
    for lo, hi in zip(edges[:-1], edges[1:]):
        last = hi == 1 << 63
        slices = []
        for a in ids:
            i0 = int(np.searchsorted(a, lo, "left"))
            i1 = a.size if last else int(np.searchsorted(a, hi, "left"))
            slices.append((i0, i1))
        cat = np.concatenate([a[i0:i1] for a, (i0, i1) in zip(ids, slices)])
        if cat.size < 2:
            continue
        srt = np.sort(cat)
        if not np.any(srt[1:] == srt[:-1]):
            continue
        owner = np.concatenate([np.full(i1 - i0, j, np.int32) for j, (i0, i1) in enumerate(slices)])
        row = np.concatenate([np.arange(i0, i1) for i0, i1 in slices])
        order = np.argsort(cat, kind="stable")
        dup = np.flatnonzero(cat[order][1:] == cat[order][:-1])
        shown = []
        for d in dup[:5]:
            a, b = order[d], order[d + 1]
            sa, sb = shards[owner[a]], shards[owner[b]]
            pa = np.load(sa.directory / PIDS_FILE, mmap_mode="r")[row[a]].decode()
            pb = np.load(sb.directory / PIDS_FILE, mmap_mode="r")[row[b]].decode()
            shown.append(f"product {pa!r} (shard {sa.key}) and product {pb!r} (shard {sb.key}) share int id {int(cat[a])}")
        raise IdCollisionError("ids collide across shards: " + "; ".join(shown)
                               + (f" (and {dup.size - 5} more)" if dup.size > 5 else ""))


def _merge_lists_on_disk(trained_index: faiss.Index, shard_paths: Sequence[Path], ivfdata: Path) -> faiss.Index:
    """What ``faiss.contrib.ondisk.merge_ondisk`` does (shards read with IO_FLAG_MMAP, their lists
    concatenated by ``OnDiskInvertedLists.merge_from_multiple`` into ``ivfdata``), except that the
    shard indexes are released afterwards: the contrib helper sets ``own_invlists = False`` on them
    and so leaves every shard file mapped for the life of the process (verified with faiss 1.15),
    which in a long-lived Dagster process keeps replaced shard files' disk space held."""
    shard_indexes = [faiss.read_index(str(p), faiss.IO_FLAG_MMAP) for p in shard_paths]
    try:
        ivf = faiss.extract_index_ivf(trained_index)
        if trained_index.ntotal:
            raise VectorIndexError("merge needs an empty trained index")
        lists = faiss.InvertedListsPtrVector()
        for p, sh in zip(shard_paths, shard_indexes):
            s_ivf = faiss.extract_index_ivf(sh)
            if s_ivf.nlist != ivf.nlist or s_ivf.code_size != ivf.code_size:
                raise IndexCorruptError(f"{p}: {s_ivf.nlist} lists of {s_ivf.code_size} B codes, the trained index has "
                                        f"{ivf.nlist} lists of {ivf.code_size} B")
            lists.push_back(s_ivf.invlists)
        ondisk = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, str(ivfdata))
        ntotal = ondisk.merge_from_multiple(lists.data(), lists.size(), False)
        trained_index.ntotal = ivf.ntotal = ntotal
        ivf.replace_invlists(ondisk, True)
        ondisk.this.disown()
        del lists
        return trained_index
    finally:
        del shard_indexes


def merge_shards(
    trained: TrainedIndex,
    shards: Sequence[ShardIndex],
    root: Path | str,
    *,
    keep_versions: int = 2,
) -> MergedIndex:
    """Merge the shard indexes (all built on ``trained``) into ``root/merged/<version>``:
    ``index.faiss`` (quantizers + list offsets), ``index.ivfdata`` (all codes and ids, an
    OnDiskInvertedLists file), ``ids.npy`` + ``product_ids.npy`` (each shard's sorted ids, one
    segment per shard) and the manifest. Every shard file's sha256 is checked first, and ids must
    not repeat across shards. Written in a temp folder that is renamed into place; the version is a
    hash of the trained index and the shard indexes, so merging the same shards again is a no-op."""
    if not shards:
        raise VectorIndexError("merge_shards: no shard indexes")
    keys = [s.key for s in shards]
    if len(set(keys)) != len(keys):
        raise VectorIndexError(f"merge_shards: shard keys repeat: {sorted(keys)}")
    shards = sorted(shards, key=lambda s: s.key)
    for s in shards:
        if s.manifest.get("trained_sha256") != trained.sha256:
            raise VectorIndexError(
                f"{s.directory}: shard {s.key} was built on trained index {str(s.manifest.get('trained_sha256'))[:16]}..., "
                f"not {trained.sha256[:16]}... ({trained.path}); re-add the shard"
            )
    parent = Path(root) / "merged"
    version = merged_version(trained.sha256, shards)
    final = parent / version
    with exclusive(parent):
        parent.mkdir(parents=True, exist_ok=True)
        if (final / MANIFEST_FILE).is_file():
            with contextlib.suppress(VectorIndexError):
                manifest = read_manifest(final)
                store.verify_files(final, manifest, mode="size")
                return MergedIndex(final, manifest, merged=False)
            shutil.rmtree(final, ignore_errors=True)
        started = time.perf_counter()
        mean = trained.catalog_mean
        for s in shards:
            store.verify_files(s.directory, s.manifest, mode="sha256")
        _check_unique_across(shards)
        verify_s = time.perf_counter() - started
        with store.new_version(parent, version, keep_versions=keep_versions) as tmp:
            t0 = time.perf_counter()
            index = _merge_lists_on_disk(trained.load(), [s.directory / INDEX_FILE for s in shards], tmp / IVFDATA_FILE)
            ivf = faiss.extract_index_ivf(index)
            ivf.nprobe = trained.params.nprobe
            # Readers open with IO_FLAG_ONDISK_SAME_DIR, so the folder can be renamed or copied; the
            # stored name is the final one anyway, for readers that do not pass the flag.
            faiss.downcast_InvertedLists(ivf.invlists).filename = str(final / IVFDATA_FILE)
            faiss.write_index(index, str(tmp / INDEX_FILE))
            count = int(index.ntotal)
            del index, ivf  # unmaps index.ivfdata
            merge_s = time.perf_counter() - t0
            expected = sum(s.count for s in shards)
            if count != expected:
                raise VectorIndexError(f"merge_shards: merged {count} vectors, the shard manifests add up to {expected}")
            segments, width = _concat_lookups(shards, tmp)
            files = {name: store.file_entry(tmp / name) for name in (INDEX_FILE, IVFDATA_FILE, IDS_FILE, PIDS_FILE)}
            params = trained.params
            manifest = {
                "format": FORMAT,
                "stage": "merged",
                "version": version,
                "encoder_fingerprint": trained.manifest["encoder_fingerprint"],
                "dim": int(params.dim),
                "count": count,
                "factory": params.factory,
                "nprobe": int(params.nprobe),
                "params": params.to_dict(),
                "index_sha256": files[INDEX_FILE]["sha256"],
                "files": files,
                "bytes_total": int(sum(e["bytes"] for e in files.values())),
                "bytes_per_product": round(sum(e["bytes"] for e in files.values()) / max(count, 1), 2),
                "ivfdata_path": str(final / IVFDATA_FILE),
                "trained_sha256": trained.sha256,
                # what a reader needs to query it: the space of the vectors and the mean they were
                # centred on (queries are centred the same way; Recommender.from_index_dir reads both)
                "vector_space": trained.manifest.get("vector_space") or "joint",
                "centred": trained.centred,
                "catalog_mean": None if mean is None else [float(x) for x in mean],
                "shards": [{"key": s.key, "count": s.count, "index_sha256": s.manifest["index_sha256"],
                            "ids_sha256": s.manifest["ids_sha256"], "version": s.manifest["version"]} for s in shards],
                "segments": segments,
                "verify_seconds": round(verify_s, 3),
                "merge_seconds": round(merge_s, 3),
                "faiss_version": faiss.__version__,
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            store.write_manifest(tmp / MANIFEST_FILE, manifest)
        return MergedIndex(final, manifest, merged=True, seconds=time.perf_counter() - started)


def _concat_lookups(shards: Sequence[ShardIndex], out: Path) -> tuple[list[list[int]], int]:
    """Concatenate the shards' sorted id / product id files into one pair, streamed (one shard at a
    time); returns the [start, end) segment of each shard and the product id width."""
    total = sum(s.count for s in shards)
    width = max(np.load(s.directory / PIDS_FILE, mmap_mode="r").dtype.itemsize for s in shards)
    ids_out = np.lib.format.open_memmap(out / IDS_FILE, mode="w+", dtype=np.int64, shape=(total,))
    pids_out = np.lib.format.open_memmap(out / PIDS_FILE, mode="w+", dtype=f"S{width}", shape=(total,))
    segments, pos = [], 0
    for s in shards:
        ids = np.load(s.directory / IDS_FILE, mmap_mode="r")
        pids = np.load(s.directory / PIDS_FILE, mmap_mode="r")
        for a in range(0, ids.size, 1 << 20):
            b = min(ids.size, a + (1 << 20))
            ids_out[pos + a : pos + b] = ids[a:b]
            pids_out[pos + a : pos + b] = pids[a:b]
        segments.append([pos, pos + int(ids.size)])
        pos += int(ids.size)
    ids_out.flush()
    pids_out.flush()
    del ids_out, pids_out
    return segments, width


# --------------------------------------------------------------------------------------------
# all steps


@dataclass
class BuildReport:
    trained: TrainedIndex
    shards: list[ShardIndex]
    merged: MergedIndex
    seconds: dict[str, float]

    @property
    def added_shards(self) -> list[str]:
        return [s.key for s in self.shards if s.added]


def build_sharded_index(
    sources: Sequence[VectorSource],
    root: Path | str,
    *,
    fingerprint: str,
    memory_budget_bytes: int,
    latency_target_ms: float = 5.0,
    previous_trained: TrainedIndex | None = None,
    force_retrain: bool = False,
    tune: bool = True,
    centre: bool = False,
    vector_space: str | None = None,
    **choose: Any,
) -> BuildReport:
    """Train (or reuse), add every changed shard, merge. ``choose`` goes to ``choose_params``
    (nlist, m, opq, coarse, max_train_size, seed...). ``previous_trained`` is reused while
    ``reuse_reason`` finds nothing against it (so a growing catalog does not retrain every time)."""
    started = time.perf_counter()
    sources = sorted(sources, key=lambda s: s.key)
    n = sum(s.count() for s in sources)
    dim = vector_dim(sources)
    trained = None
    if previous_trained is not None and not force_retrain:
        if reuse_reason(previous_trained, n, dim, fingerprint, memory_budget_bytes=memory_budget_bytes,
                        latency_target_ms=latency_target_ms, centre=centre) is None:
            trained = previous_trained
    if trained is None:
        params = choose_params(n, dim, memory_budget_bytes=memory_budget_bytes, latency_target_ms=latency_target_ms, **choose)
        trained = train_index(sources, root, params, fingerprint=fingerprint, tune=tune, force=force_retrain,
                              centre=centre, vector_space=vector_space)
    t_train = time.perf_counter() - started
    shards = [add_shard(trained, s, root) for s in sources]
    t_add = time.perf_counter() - started - t_train
    merged = merge_shards(trained, shards, root)
    return BuildReport(trained, shards, merged, {
        "train": round(t_train, 3), "add": round(t_add, 3),
        "merge": round(time.perf_counter() - started - t_train - t_add, 3), "total": round(time.perf_counter() - started, 3),
    })

