"""The scene search index on disk as a self-contained, loadable recommender ("bundle").

A bundle folder holds

* ``index.faiss`` + ``manifest.json`` + ``members.parquet``: the FAISS index over the products' image
  features (``indexes.flat_files.save_index`` / ``indexes.flat_build``), centred on the catalog mean (region queries
  retrieve products far better centred, see bench/bench_scene_query.py); the manifest carries the
  vector space (``trunk`` for the default encoder's pooled CNN features, ``joint`` for encoders that
  embed images directly) and the mean;
* ``products.parquet``: the enriched catalog columns the re-ranker reads, plus each product's text
  vector;
* ``bundle.json``: the encoder spec (so a server rebuilds the very encoder the vectors came from,
  including the alignment head), the text-vector fingerprint, the index sha256 it was written with
  and its own version string.

``bundle.json`` is written last and names the index sha256, so a reader never pairs a new index with
old side files: :func:`load_recommender` refuses a half-updated folder and the caller retries.

No Dagster imports: the CLI, the HTTP server and the export job load bundles through
:func:`load_served` (the bundle plus the learned scorer, as served), the evaluation assets and the
benchmarks through :func:`load_recommender`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from scene_assets.embeddings import vectors_frame
from scene_assets.encoders import EncoderSpec, build_encoder
from scene_assets.indexes import flat_files
from scene_assets.indexes.flat_build import MEMBERS_FILE, IndexBuildReport, build_or_update_index
from scene_assets.indexes.flat_choice import LatencyBudget
from scene_assets.indexes.store import write_atomic, write_atomic_bytes, write_atomic_parquet
from scene_assets.indexes.vectors import sorted_by_product_id, vector_matrix
from scene_assets.matching import Recommender, catalog_mean, manifest_search_threads
from scene_assets.ranking import ScoringWeights
from scene_assets.ranking.catalog import ProductInfo, StringColumn
from scene_assets.regions import RegionConfig, center_and_normalize, center_and_normalize_in_place, compute_regions

BUNDLE_FILE = "bundle.json"
PRODUCTS_FILE = "products.parquet"
TEXT_VECTORS_FILE = "text_vectors.npy"  # float32, rows in manifest product_ids order, zeros = none
BUNDLE_FORMAT = 1
# the re-ranker's per-product columns (``ProductFactors``), one .npy each, in a folder per bundle version
PRODUCT_COLUMNS_DIR = "product_columns"
PRODUCT_STRINGS_FILE = "product_strings.arrow"
VARIANT_GROUPS_FILE = "variant_groups.arrow"

# Catalog columns the re-ranker uses (Recommender._build_product_table); others are not copied.
RERANK_COLUMNS = (
    "product_id", "title", "product_type", "parsed_product_type", "category", "colors", "materials",
    "size_class", "variant_group", "room_hints", "style_words", "image_path",
)


class BundleError(RuntimeError):
    """A bundle folder is missing, half-written or inconsistent (names the file)."""


def _changed_share(features: pl.DataFrame, directory: Path) -> float:
    members_path = directory / MEMBERS_FILE
    if not members_path.is_file() or features.height == 0:
        return 1.0
    try:
        members = pl.read_parquet(members_path)
    except Exception:  # unreadable members: treat everything as changed
        return 1.0
    unchanged = features.join(members, on=["product_id", "content_hash"], how="semi").height
    removed = members.join(features.select("product_id"), on="product_id", how="anti").height
    return (features.height - unchanged + removed) / max(features.height, 1)


def _previous_mean(directory: Path, fingerprint: str, dim: int) -> np.ndarray | None:
    try:
        manifest = json.loads((directory / flat_files.MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None
    mean = manifest.get("catalog_mean")
    if manifest.get("encoder_fingerprint") != fingerprint or not mean or len(mean) != dim:
        return None
    return np.asarray(mean, dtype=np.float32)


def sample_region_queries(encoder, space: str, scene_paths: list[Path], config: RegionConfig | None = None,
                          limit: int = 8) -> np.ndarray | None:
    """Raw (uncentred) region vectors of up to ``limit`` scene photos in the index's ``space`` ("trunk" or
    "joint"), stacked scene after scene: what the index choice times its search on. Unreadable photos
    are skipped; None when none could be used."""
    from scene_assets.images import open_rgb

    batches = []
    for path in scene_paths:
        if len(batches) >= limit:
            break
        try:
            image = open_rgb(Path(path))
        except Exception:  # noqa: BLE001 - a timing sample, not data: an unreadable photo is just not used
            continue
        regions = compute_regions(image, encoder, config, project=space == "joint")
        vectors = regions.trunk if space == "trunk" else regions.joint
        if vectors is not None and len(vectors):
            batches.append(np.asarray(vectors, dtype=np.float32))
    return np.concatenate(batches) if batches else None


def build_scene_index(
    features: pl.DataFrame,
    directory: Path,
    *,
    fingerprint: str,
    space: str,
    exact_threshold: int | None = None,
    latency_budget: LatencyBudget | None = None,
    sample_queries: np.ndarray | Callable[[], np.ndarray | None] | None = None,
    recentre_changed_share: float = 0.05,
) -> tuple[IndexBuildReport, bool, float]:
    """Index ``features`` (product_id, content_hash, vector) centred on the catalog mean.

    The mean is kept from the previous build while fewer than ``recentre_changed_share`` of the
    products changed: a new mean moves every stored vector and forces a full rebuild, while a 1 %
    catalog change barely moves it. The index kind: exact up to ``exact_threshold`` products when
    given, else measured against ``latency_budget`` (``indexes.flat_choice``), with ``sample_queries``
    (raw region vectors of real scenes in the index's space, e.g. :func:`sample_region_queries`, or a
    function returning them, called only when the kind is measured; centred here as the recommender
    centres its queries) when the caller has them. Returns (build report,
    recentred?, changed share)."""
    features = sorted_by_product_id(features)
    matrix = vector_matrix(features)  # a copy, centred in place below
    dim = matrix.shape[1] if features.height else 0
    changed = _changed_share(features, directory)
    mean = _previous_mean(directory, fingerprint, dim) if changed < recentre_changed_share else None
    recentred = mean is None
    if recentred:
        mean = catalog_mean(matrix) if features.height else np.zeros(0, np.float32)
    # in place, then only the frame's copy is kept: at 1M x 1280 each copy is 5 GB
    centred = center_and_normalize_in_place(matrix, mean) if features.height else matrix
    frame = vectors_frame(features["product_id"], features["content_hash"], fingerprint, centred)
    del matrix, centred
    given_queries = sample_queries

    def centred_queries() -> np.ndarray | None:
        # only when the index kind is measured (not when a small update keeps the previous kind)
        raw = given_queries() if callable(given_queries) else given_queries
        if raw is None or not len(raw) or not features.height:
            return None
        return center_and_normalize(np.asarray(raw, dtype=np.float32), mean)

    report = build_or_update_index(
        frame,
        directory,
        fingerprint=fingerprint,
        exact_threshold=exact_threshold,
        latency_budget=latency_budget,
        sample_queries=centred_queries,
        incremental=not recentred,
        extra_manifest={"vector_space": space, "catalog_mean": [float(x) for x in mean], "centred": True},
    )
    return report, recentred, changed


def write_bundle_files(
    directory: Path,
    *,
    catalog: pl.DataFrame,
    text_vectors: pl.DataFrame | None,
    encoder_spec: Any,
    text_fingerprint: str | None,
    extra: dict | None = None,
) -> dict:
    """Write ``products.parquet`` then ``bundle.json`` next to an index saved in ``directory``.

    ``catalog``: the enriched catalog (only indexed products are kept); ``text_vectors``: product_id,
    vector (optional); ``encoder_spec``: an ``EncoderSpec`` (or dict of its fields)."""
    directory = Path(directory)
    manifest = json.loads((directory / flat_files.MANIFEST_FILE).read_text())
    indexed = pl.DataFrame({"product_id": manifest["product_ids"]}, schema={"product_id": pl.String})
    present = [c for c in RERANK_COLUMNS if c in catalog.columns]
    products = indexed.join(catalog.select(present), on="product_id", how="left", maintain_order="left")
    write_atomic_parquet(products, directory / PRODUCTS_FILE)
    # Text vectors as one .npy matrix in index order: a server loads it with one read (no Parquet
    # list columns, whose decoding transiently needs several times the matrix's size).
    text_matrix = None
    if text_vectors is not None and text_vectors.height:
        aligned = indexed.join(text_vectors.select("product_id", "vector"), on="product_id", how="left", maintain_order="left")
        present_rows = aligned["vector"].is_not_null().to_numpy()
        text_matrix = np.zeros((aligned.height, text_vectors["vector"].dtype.size), dtype=np.float32)
        if present_rows.any():
            text_matrix[present_rows] = vector_matrix(aligned.filter(pl.col("vector").is_not_null()))
    text_path = directory / TEXT_VECTORS_FILE
    if text_matrix is not None:
        write_atomic(text_path, lambda handle: np.save(handle, text_matrix))
    else:
        text_path.unlink(missing_ok=True)
    spec = encoder_spec.to_dict() if isinstance(encoder_spec, EncoderSpec) else dict(encoder_spec)
    products_sha = hashlib.sha256((directory / PRODUCTS_FILE).read_bytes()).hexdigest()
    text_sha = hashlib.sha256(text_path.read_bytes()).hexdigest() if text_matrix is not None else None
    version = hashlib.sha256(f"{manifest['index_sha256']}:{products_sha}:{text_sha}".encode()).hexdigest()[:16]
    bundle = {
        "format": BUNDLE_FORMAT,
        "version": version,
        "index_sha256": manifest["index_sha256"],
        "products_sha256": products_sha,
        "text_vectors_sha256": text_sha,
        "count": manifest["count"],
        "vector_space": manifest.get("vector_space", "joint"),
        "encoder_fingerprint": manifest["encoder_fingerprint"],
        "encoder_spec": spec,
        "text_fingerprint": text_fingerprint,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(extra or {}),
    }
    write_atomic_bytes(directory / BUNDLE_FILE, json.dumps(bundle, indent=1).encode())
    return bundle


def write_product_columns(directory: str | os.PathLike, encoder) -> dict:
    """Compute the re-ranker's per-product columns once, as :func:`load_recommender` would at every load
    (room membership, size, colours, materials, styles, text vectors: ``ProductFactors``), and store them
    as .npy files named in ``bundle.json``; servers then memory-map them (:func:`map_npy`: no per-product
    Python loop at start-up, the pages shared by every replica in the page cache). The folder is per bundle version (a server still mapping the previous one keeps reading it;
    older folders are removed). Returns the bundle as rewritten."""

    directory = Path(directory)
    bundle = read_bundle(directory)
    recommender, _ = load_recommender(directory, encoder=encoder, product_columns=False)
    folder = directory / PRODUCT_COLUMNS_DIR / bundle["version"]
    folder.mkdir(parents=True, exist_ok=True)
    relative = f"{PRODUCT_COLUMNS_DIR}/{bundle['version']}"
    files = {}
    for name, array in recommender.products.columns().items():
        write_atomic(folder / f"{name}.npy", lambda handle, a=array: np.save(handle, np.ascontiguousarray(a)))
        files[name] = f"{relative}/{name}.npy"
    info = write_product_info(folder, relative, recommender.info, StringColumn(list(recommender.product_ids)).array,
                              recommender.int_ids)
    bundle["product_columns"] = {
        "files": files, "count": bundle["count"], "products_sha256": bundle["products_sha256"],
        "text_vectors_sha256": bundle.get("text_vectors_sha256"), "text_fingerprint": encoder.text_fingerprint(),
        "info": info}
    publish_bundle(directory, bundle)
    return bundle


def write_product_info(folder: Path, relative: str, info: ProductInfo, product_ids: pa.Array | pa.ChunkedArray,
                       int_ids: np.ndarray) -> dict:
    """Write the descriptive attributes (titles, categories, variant groups) and the ids of a bundle's
    products into ``folder`` (``relative`` to the bundle); returns their entry of ``bundle.json``. A
    server reading them holds no Python object per product (at 10M products those alone would
    outgrow a 2 GB replica)."""
    strings, codes, names = info.columns()
    strings = strings.append_column("product_id", product_ids)
    write_atomic(folder / PRODUCT_STRINGS_FILE, lambda handle: _write_arrow(handle, strings))
    group_names = pa.table({"variant_group": names["variant_group"]})
    write_atomic(folder / VARIANT_GROUPS_FILE, lambda handle: _write_arrow(handle, group_names))
    info_codes = {**codes, "int_id": np.asarray(int_ids, dtype=np.int64)}
    for name, array in info_codes.items():
        write_atomic(folder / f"info_{name}.npy", lambda handle, a=array: np.save(handle, np.ascontiguousarray(a)))
    return {"strings": f"{relative}/{PRODUCT_STRINGS_FILE}", "variant_groups": f"{relative}/{VARIANT_GROUPS_FILE}",
            "codes": {name: f"{relative}/info_{name}.npy" for name in info_codes},
            "category_names": names["category"]}


def _write_arrow(handle, table: pa.Table) -> None:
    """One record batch in an Arrow IPC file: reopened memory-mapped, each column is one array."""
    with pa.ipc.new_file(handle, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(table.num_rows, 1))


def map_arrow(path: Path) -> pa.Table:
    """An Arrow IPC file's table over its memory-mapped pages (read as values are taken)."""
    return pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()


def map_npy(path: Path, *, touch: bool = True) -> np.ndarray:
    """A read-only array over a .npy file's pages (mapped shared: replicas share them in the page cache),
    every page touched once at open so that no query waits on reading the file: at 1M products, with the
    columns' pages dropped from the page cache, the first 30 queries' re-rank stage took 16.1 ms p50
    when mapped on first touch and 5.7 ms with the pages touched at open (1.6 s at start-up for the 9
    columns; MAP_POPULATE alone did not avoid it here). ``touch=False`` (a file read a few rows at a
    time, larger than the page cache should hold: a two-stage bundle's exact vectors) maps it for
    random access instead: a fault reads its page, not the kernel's read-ahead window around it (at
    10M products 30 scenes' candidates faulted in 4.6 GB of vectors with read-ahead)."""
    import mmap

    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(handle)
        offset = handle.tell()
        count = int(np.prod(shape))
        if count == 0:
            return np.zeros(shape, dtype=dtype)
        mapped = mmap.mmap(handle.fileno(), 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
    if touch:
        np.frombuffer(mapped, dtype=np.uint8)[:: mmap.PAGESIZE].max()  # one byte of every page: read in now
    else:
        mapped.madvise(mmap.MADV_RANDOM)
    array = np.frombuffer(mapped, dtype=dtype, count=count, offset=offset)  # keeps the mapping alive
    return array.reshape(shape, order="F" if fortran else "C")


def row_prefetcher(array: np.ndarray) -> Callable[[np.ndarray], None] | None:
    """For a 2-D array over a :func:`map_npy` mapping: ``rows -> None`` asking the kernel to read those
    rows' pages now, all at once (``MADV_WILLNEED``), so that gathering scattered rows waits on reads in
    parallel rather than on one page fault after another. At 10M products with the exact vectors out of
    the page cache, gathering a scene's 2,572 candidate rows took 190 ms fault by fault and 50 ms
    prefetched (``/tmp``-style probe, this machine's disk); with the pages cached it costs ~1 us a row.
    None for an array that is not memory-mapped."""
    import mmap

    base = array
    while isinstance(base, np.ndarray):
        base = base.base
    mapped = base.obj if isinstance(base, memoryview) else base
    if not isinstance(mapped, mmap.mmap) or array.ndim != 2:
        return None
    start = array.ctypes.data - np.frombuffer(mapped, dtype=np.uint8).ctypes.data
    row_bytes, page = array.strides[0], mmap.PAGESIZE

    def prefetch(rows: np.ndarray) -> None:
        for row in np.asarray(rows, dtype=np.int64).tolist():
            first = (start + row * row_bytes) // page * page
            mapped.madvise(mmap.MADV_WILLNEED, first, start + (row + 1) * row_bytes - first)

    return prefetch


def _open_product_columns(directory: Path, bundle: dict, encoder):
    """The bundle's stored product columns, memory-mapped, or None when it has none that fit this bundle
    (written before them, or for other products / text vectors / text encoder: then they are rebuilt)."""
    from scene_assets.ranking.factors import ProductFactors

    stored = bundle.get("product_columns")
    if (not stored or stored.get("products_sha256") != bundle.get("products_sha256")
            or stored.get("text_vectors_sha256") != bundle.get("text_vectors_sha256")
            or stored.get("count") != bundle.get("count")
            or stored.get("text_fingerprint") != encoder.text_fingerprint()):
        return None
    def opened(relative: str, read: Callable[[Path], Any]):
        path = directory / relative
        try:
            return read(path)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise BundleError(f"{path}: unreadable product column ({exc}); being rewritten? retry") from exc

    columns = {name: opened(relative, map_npy) for name, relative in stored["files"].items()}
    info = stored.get("info")
    try:
        factors = ProductFactors.from_columns(columns)
        if info is None:  # written before the attributes were stored: built from the catalog
            return StoredColumns(factors, None, None, None)
        strings = opened(info["strings"], map_arrow)
        codes = {name: opened(relative, map_npy) for name, relative in info["codes"].items()}
        groups = opened(info["variant_groups"], map_arrow)
        product_info = ProductInfo.from_columns(
            strings, codes, {"category": info["category_names"], "variant_group": groups.column(0)})
        return StoredColumns(factors, product_info, StringColumn(strings.column("product_id")), codes["int_id"])
    except (ValueError, KeyError) as exc:
        raise BundleError(f"{directory / PRODUCT_COLUMNS_DIR}: {exc}") from exc


@dataclass(frozen=True)
class StoredColumns:
    """What a bundle's product columns give a recommender (``info`` and the ids: None when written
    before the attributes were stored)."""

    factors: Any
    info: ProductInfo | None
    product_ids: StringColumn | None
    int_ids: np.ndarray | None


def read_bundle(directory: str | os.PathLike) -> dict:
    path = Path(directory) / BUNDLE_FILE
    try:
        bundle = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise BundleError(f"{path}: no bundle here; materialize the scene_index asset first") from exc
    except ValueError as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from exc
    if bundle.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: bundle format {bundle.get('format')!r}, this code reads {BUNDLE_FORMAT}")
    return bundle


def bundle_version(directory: str | os.PathLike) -> str | None:
    """The bundle's version string (cheap: reads bundle.json), or None when there is none."""
    try:
        return read_bundle(directory)["version"]
    except BundleError:
        return None


def encoder_from_bundle(bundle: dict, *, device: str | None = None):
    spec = EncoderSpec.from_dict(bundle["encoder_spec"])
    return build_encoder(spec) if device is None else build_encoder(spec, device=device)


def load_recommender(
    directory: str | os.PathLike,
    *,
    encoder: Any = None,
    device: str | None = None,
    weights: ScoringWeights | None = None,
    learned: Any = None,
    product_columns: bool = True,
    **kwargs: Any,
) -> tuple[Recommender, dict]:
    """Load a bundle as a :class:`Recommender` (plus the bundle dict). ``encoder``: reuse an already
    loaded encoder (it must be the bundle's: its fingerprint is checked); else one is built from the
    bundle's encoder spec. ``learned``: a :class:`~scene_assets.learned.LearnedScorer` or the folder
    one was saved to, fitted in this bundle's feature space (checked). ``product_columns``: use the
    per-product columns stored with the bundle (:func:`write_product_columns`), memory-mapped, when they
    fit it; False (or none stored) computes them from the catalog and text vectors. Raises :class:`BundleError`
    for a missing or half-updated bundle, an unreadable scorer or a scorer from another encoder."""
    directory = Path(directory)
    bundle = read_bundle(directory)
    if bundle.get("kind") == "two_stage":
        return _load_two_stage(directory, bundle, encoder=encoder, device=device, weights=weights, learned=learned,
                               **kwargs)
    # mmap=None: an index of 2 GiB or more is memory-mapped (its lists stay in the shared page cache).
    index, manifest = flat_files.load_index(directory, expected_fingerprint=bundle["encoder_fingerprint"], mmap=None)
    if manifest["index_sha256"] != bundle["index_sha256"]:
        raise BundleError(f"{directory / BUNDLE_FILE}: names index {bundle['index_sha256'][:12]}, folder holds "
                          f"{manifest['index_sha256'][:12]} (being rebuilt?); retry")
    from scene_assets.embeddings import ImageFeatureStage

    built_here = encoder is None
    if built_here:
        encoder = encoder_from_bundle(bundle, device=device)
    # Queries must be encoded by the encoder that made the index (weights, preprocessing, trunk):
    # a mismatch gives plausible-looking but wrong answers, so it is refused, never served.
    given = ImageFeatureStage.of(encoder).fingerprint
    if given != bundle["encoder_fingerprint"]:
        source = "the encoder built from its spec" if built_here else "the given encoder"
        raise BundleError(f"{directory}: index built with encoder {bundle['encoder_fingerprint'][:16]}, {source} is "
                          f"{given[:16]}; re-materialize scene_index with the current encoder (or fix its weights)")
    stored = _open_product_columns(directory, bundle, encoder) if product_columns else None
    factors = stored.factors if stored is not None else None
    text_vectors = None
    text_path = directory / TEXT_VECTORS_FILE
    if (factors is None and bundle.get("text_vectors_sha256")
            and bundle.get("text_fingerprint") in (None, encoder.text_fingerprint())):
        try:
            matrix = np.load(text_path)
        except (OSError, ValueError) as exc:
            raise BundleError(f"{text_path}: unreadable ({exc})") from exc
        if matrix.shape[0] != len(manifest["product_ids"]):
            raise BundleError(f"{text_path}: {matrix.shape[0]} rows for {len(manifest['product_ids'])} indexed products")
        text_vectors = (manifest["product_ids"], matrix)
    learned = _checked_scorer(learned, given, directory)
    stored_info = stored is not None and stored.info is not None
    catalog = None
    if not stored_info:
        products_path = directory / PRODUCTS_FILE
        try:
            catalog = pl.read_parquet(products_path)
        except Exception as exc:
            raise BundleError(f"{products_path}: unreadable ({exc})") from exc
    mean = manifest.get("catalog_mean")
    recommender = Recommender(
        encoder,
        index,
        stored.product_ids if stored_info else manifest["product_ids"],
        catalog,
        space=manifest.get("vector_space", "joint"),
        catalog_mean=np.asarray(mean, dtype=np.float32) if mean else None,
        text_vectors=text_vectors,
        weights=weights,
        learned=learned,
        product_factors=factors,
        product_info=stored.info if stored_info else None,
        int_ids=stored.int_ids if stored_info else None,
        **{"search_threads": manifest_search_threads(manifest), **kwargs},
    )
    return recommender, bundle


def _load_two_stage(directory: Path, bundle: dict, *, encoder: Any, device: str | None, weights: ScoringWeights | None,
                    learned: Any, **kwargs: Any) -> tuple[Recommender, dict]:
    """A two-stage bundle (``scene_assets.two_stage_bundle``): the merged index it names, memory-mapped,
    with every per-product column and the exact vectors memory-mapped from the bundle."""
    from scene_assets.indexes.errors import VectorIndexError
    from scene_assets.indexes.searcher import open_index

    index_dir = Path(bundle["index_dir"])
    try:
        manifest_sha = hashlib.sha256((index_dir / "manifest.json").read_bytes()).hexdigest()
    except OSError as exc:
        raise BundleError(f"{directory / BUNDLE_FILE}: the index it serves is unreadable ({exc})") from exc
    if manifest_sha != bundle["index_manifest_sha256"]:
        raise BundleError(f"{directory / BUNDLE_FILE}: names index manifest {bundle['index_manifest_sha256'][:12]}, "
                          f"{index_dir} holds {manifest_sha[:12]} (re-merged since?); rewrite the bundle")
    from scene_assets.two_stage_bundle import index_fingerprint

    built_here = encoder is None
    if built_here:
        encoder = encoder_from_bundle(bundle, device=device)
    space = bundle.get("vector_space", "joint")
    given = index_fingerprint(encoder, space)
    if given != bundle["encoder_fingerprint"]:
        raise BundleError(f"{directory}: index built with encoder {bundle['encoder_fingerprint'][:16]}, the "
                          f"{'encoder built from its spec' if built_here else 'given encoder'} is {given[:16]}")
    stored = _open_product_columns(directory, bundle, encoder)
    if stored is None or stored.info is None:
        raise BundleError(f"{directory}: a two-stage bundle without its product columns (written by another version?)")
    try:
        opened = open_index(index_dir, expected_fingerprint=bundle["encoder_fingerprint"])
        vectors = map_npy(directory / bundle["product_columns"]["vectors"], touch=False)
    except (VectorIndexError, OSError, ValueError) as exc:
        raise BundleError(f"{directory}: {exc}") from exc
    from scene_assets.embeddings import ImageFeatureStage

    learned = _checked_scorer(learned, ImageFeatureStage.of(encoder).fingerprint, directory)
    mean = opened.manifest.get("catalog_mean")
    recommender = Recommender(
        encoder, opened.searcher, stored.product_ids, None, space=space,
        catalog_mean=None if mean is None else np.asarray(mean, dtype=np.float32), product_vectors=vectors, rescore=True, vector_prefetch=row_prefetcher(vectors), weights=weights, learned=learned, product_factors=stored.factors,
        product_info=stored.info, int_ids=stored.int_ids, **kwargs)
    return recommender, bundle


def _checked_scorer(learned: Any, features_fingerprint: str, directory: Path):
    """``learned`` (a ``LearnedScorer``, its folder, or None) for a bundle whose encoder gives image
    features ``features_fingerprint``. A scorer fitted on other features is refused like an index of
    another encoder, never dropped silently: dropping it would change the weights, the confidences and
    the ranking unannounced."""
    if learned is None:
        return None
    if not hasattr(learned, "projection"):
        learned = load_learned_scorer(learned)
    if learned.trunk_fingerprint not in (None, features_fingerprint):
        raise BundleError(f"learned scorer was fitted on encoder features {learned.trunk_fingerprint[:16]}, the "
                          f"bundle in {directory} holds {features_fingerprint[:16]}; refit it (materialize "
                          "learned_scorer: scene-matcher materialize --job evaluation_job) or serve without it "
                          "(--no-learned; the export job's use_learned: false)")
    return learned


def publish_bundle(directory: Path, bundle: dict) -> None:
    """Write ``bundle.json`` (atomically: readers see the old or the new one), then remove the product
    column folders of other versions. A server still mapping an old version's files keeps reading
    them: unlinked files stay readable while they are mapped."""
    write_atomic_bytes(directory / BUNDLE_FILE, json.dumps(bundle, indent=1).encode())
    for old in (directory / PRODUCT_COLUMNS_DIR).iterdir():
        if old.name != bundle["version"]:
            shutil.rmtree(old, ignore_errors=True)


def bundle_info(directory: Path, bundle: dict, recommender: Recommender | None = None) -> dict:
    info = {
        "index_dir": str(directory),
        "products": bundle["count"],
        "vector_space": bundle["vector_space"],
        "encoder_fingerprint": bundle["encoder_fingerprint"],
        "bundle_version": bundle["version"],
        "written_at": bundle["written_at"],
    }
    learned = getattr(recommender, "learned", None)
    info["learned_scorer"] = None if learned is None else learned.fingerprint()  # stated either way
    if learned is not None:
        info["learned_training"] = learned.info
    return info


def load_learned_scorer(directory: str | os.PathLike):
    """The :class:`~scene_assets.learned.LearnedScorer` saved in ``directory``, or :class:`BundleError`."""
    from scene_assets.learned import LearnedScorer

    try:
        return LearnedScorer.load(directory)
    except (OSError, ValueError) as exc:
        raise BundleError(f"learned scorer {directory}: {exc}") from exc


def served_version(bundle_version: str, scorer_fingerprint: str | None) -> str:
    """What identifies a served recommender: the bundle's version, plus the learned scorer's fingerprint
    when one is attached (so a newly fitted scorer is a new version that a polling server picks up)."""
    return bundle_version if scorer_fingerprint is None else f"{bundle_version}+{scorer_fingerprint[:12]}"


@dataclass
class LoadedRecommender:
    """A loaded recommender and what identifies it (what :func:`load_served` and a provider's ``load()``
    return).

    ``version``: :func:`served_version` of what was loaded. ``info``: free-form facts shown by ``/ready``
    (index dir, product count, encoder fingerprint, learned scorer, ...); the keys ``encoder_fingerprint``
    and ``products`` are also exported as metrics when present. Any object with these three attributes
    is accepted by the server."""

    version: str
    recommender: Recommender
    info: dict


def load_served(
    directory: str | os.PathLike,
    *,
    learned: Any = None,
    learned_fingerprint: str | None = None,
    encoder: Any = None,
    weights: ScoringWeights | None = None,
) -> LoadedRecommender:
    """The bundle in ``directory`` with the learned scorer ``learned`` (a ``LearnedScorer``, its folder, or
    None for none), as served: the one loading step behind ``scene-matcher recommend``, ``serve`` and the
    export job (which bundle and which scorer they pick: ``pipelines/serving.py``). A scorer fitted on
    another encoder is refused (:class:`BundleError`, see :func:`load_recommender`).
    ``learned_fingerprint``: the scorer's fingerprint when the caller already knows it (a provider's
    cheap ``version()`` must name the same one); else it is computed."""
    directory = Path(directory)
    recommender, bundle = load_recommender(directory, encoder=encoder, weights=weights, learned=learned)
    info = bundle_info(directory, bundle, recommender)
    fingerprint = None if recommender.learned is None else learned_fingerprint or info["learned_scorer"]
    return LoadedRecommender(served_version(bundle["version"], fingerprint), recommender, info)


def with_scorer(loaded: LoadedRecommender, learned: Any) -> LoadedRecommender:
    """``loaded`` served with the learned scorer ``learned`` (a ``LearnedScorer`` or its folder) in place of its
    own: a view sharing the index and the per-product arrays (what an A/B variant pinned to a scorer version
    serves; ``scene_assets.ranking.variants``). Its version names the bundle and that scorer. A scorer fitted
    on another encoder is refused (:class:`BundleError`), as by :func:`load_served`."""
    from scene_assets.embeddings import ImageFeatureStage

    directory = Path(loaded.info.get("index_dir", "."))
    scorer = _checked_scorer(learned, ImageFeatureStage.of(loaded.recommender.encoder).fingerprint, directory)
    recommender = loaded.recommender.with_learned(scorer)
    bundle_version = str(loaded.info.get("bundle_version") or loaded.version.split("+")[0])
    info = loaded.info | {"learned_scorer": scorer.fingerprint(), "learned_training": scorer.info}
    return LoadedRecommender(served_version(bundle_version, info["learned_scorer"]), recommender, info)
