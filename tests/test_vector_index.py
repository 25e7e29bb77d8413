"""Tests for the flat/IVF index kind, scene_assets/indexes/flat*.py (small seeded data; runs in a few seconds on CPU)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import faiss
import numpy as np
import pytest
from faiss.contrib.evaluation import knn_intersection_measure

from scene_assets.indexes import errors, flat, flat_files, flat_spec, store
from scene_assets.indexes import ids as id_module
from scene_assets.indexes.ids import IdLookup, assign_ids, product_int_id
from scene_assets.indexes.searcher import FaissSearcher, as_searcher, open_index

DIM = 32
FP = "encoder:test-v1"


def clustered(n: int, dim: int = DIM, n_clusters: int = 40, spread: float = 0.35, seed: int = 0) -> np.ndarray:
    """Mixture of Gaussians on the unit sphere (seeded)."""
    rs = np.random.default_rng(seed)
    centers = rs.standard_normal((n_clusters, dim)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    labels = rs.integers(0, n_clusters, size=n)
    x = centers[labels] + rs.standard_normal((n, dim)).astype(np.float32) * (spread / np.sqrt(dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def pids(n: int, prefix: str = "sku") -> list[str]:
    return [f"{prefix}-{i:05d}" for i in range(n)]


def exact_topk(x: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    s = q @ x.T
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, order, axis=1), order


@pytest.fixture(scope="module")
def data():
    x = clustered(6000)
    q = clustered(200, seed=99)
    return x, pids(len(x)), q


@pytest.fixture(scope="module")
def ivf_spec():
    spec = flat_spec.choose_index_spec(6000, DIM, exact_threshold=1000)
    assert spec.kind == "ivf" and spec.factory.startswith("IVF") and spec.train_size > 0
    return spec


@pytest.fixture(scope="module")
def ivf_index(data, ivf_spec):
    x, ids, _ = data
    return flat.build_index(x, ids, ivf_spec)


# --- ids -------------------------------------------------------------------------------------


def test_product_int_id_is_stable_and_non_negative():
    assert product_int_id("sku-1") == 5596144926642894054  # pinned: ids must never change
    ids = assign_ids(pids(1000))
    assert ids.dtype == np.int64 and (ids >= 0).all() and np.unique(ids).size == 1000
    assert np.array_equal(ids, assign_ids(pids(1000)))


def test_assign_ids_reports_both_colliding_product_ids(monkeypatch):
    real = id_module.product_int_id
    monkeypatch.setattr(id_module, "product_int_id", lambda p: 42 if p in ("lamp-A", "sofa-B") else real(p))
    with pytest.raises(errors.IdCollisionError, match="lamp-A") as err:
        id_module.assign_ids(["x", "lamp-A", "y", "sofa-B"])
    assert "sofa-B" in str(err.value)


def test_assign_ids_rejects_repeated_product_id():
    with pytest.raises(errors.IdCollisionError, match="appears more than once"):
        assign_ids(["a", "b", "a"])


def test_id_lookup_maps_back_and_handles_missing():
    names = pids(50)
    lookup = IdLookup.from_product_ids(names)
    ids = assign_ids(names)
    got = lookup.to_product_ids(np.array([[ids[3], -1], [ids[49], 12345]]))
    assert got.tolist() == [["sku-00003", None], ["sku-00049", None]]


# --- build / search --------------------------------------------------------------------------


def test_flat_is_exact(data):
    x, ids, q = data
    spec = flat_spec.choose_index_spec(len(x), DIM)
    assert spec.factory == "Flat" and spec.kind == "flat"
    index = flat.build_index(x, ids, spec)
    assert isinstance(index, faiss.IndexIDMap2) and index.ntotal == len(x)
    scores, got = flat.search(index, q, 10)
    ref_scores, ref_rows = exact_topk(x, q, 10)
    int_ids = assign_ids(ids)
    assert np.array_equal(got, int_ids[ref_rows])
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    lookup = IdLookup.from_product_ids(ids)
    assert lookup.to_product_ids(got[0, :1])[0] == ids[ref_rows[0, 0]]


def test_build_normalises_and_does_not_modify_input(data):
    x, ids, _ = data
    scaled = x[:100] * 7.0
    before = scaled.copy()
    index = flat.build_index(scaled, ids[:100], flat_spec.choose_index_spec(100, DIM))
    assert np.array_equal(scaled, before)
    scores, _ = flat.search(index, scaled[:5] * 3, 1)
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)  # cosine of a vector with itself


@pytest.mark.parametrize("bad", ["nan", "zero"])
def test_build_rejects_nan_and_zero_vectors(data, bad):
    x, ids, _ = data
    y = x[:20].copy()
    y[7] = np.nan if bad == "nan" else 0.0
    with pytest.raises(ValueError, match="sku-00007"):
        flat.build_index(y, ids[:20], flat_spec.choose_index_spec(20, DIM))


def test_search_pads_missing_results(data):
    x, ids, _ = data
    index = flat.build_index(x[:3], ids[:3], flat_spec.choose_index_spec(3, DIM))
    scores, got = flat.search(index, x[0], 5)
    assert got.shape == (1, 5) and (got[0, 3:] == -1).all() and np.isneginf(scores[0, 3:]).all()


def test_approximate_spec_recall(data, ivf_spec, ivf_index):
    x, _, q = data
    int_ids = assign_ids(pids(len(x)))
    _, ref_rows = exact_topk(x, q, 10)
    _, got = flat.search(ivf_index, q, 10)
    recall = knn_intersection_measure(got, int_ids[ref_rows])
    assert recall >= 0.9, recall
    assert flat.factory_string(ivf_index) == ivf_spec.factory
    assert flat.supports_remove(ivf_index) and not isinstance(ivf_index, faiss.IndexIDMap2)


def test_recall_never_drops_as_nprobe_grows(data, ivf_index):
    x, _, q = data
    int_ids = assign_ids(pids(len(x)))
    _, ref_rows = exact_topk(x, q, 10)
    recalls = []
    for nprobe in (1, 2, 4, 8, 16, 32, ivf_index.nlist):
        _, got = flat.search(ivf_index, q, 10, nprobe=nprobe)
        recalls.append(knn_intersection_measure(got, int_ids[ref_rows]))
    assert all(b >= a for a, b in zip(recalls, recalls[1:])), recalls
    assert recalls[-1] >= 0.97, recalls
    assert ivf_index.nprobe == flat_spec.choose_index_spec(6000, DIM, exact_threshold=1000).search_params["nprobe"]


def test_ivf_spec_is_deterministic(data, ivf_spec, ivf_index):
    x, ids, q = data
    again = flat.build_index(x, ids, ivf_spec)
    assert np.array_equal(flat.search(again, q, 10)[1], flat.search(ivf_index, q, 10)[1])


# --- updates ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec_kind", ["flat", "ivf"])
def test_update_removes_and_readds(data, ivf_spec, spec_kind):
    x, ids, _ = data
    spec = flat_spec.choose_index_spec(len(x), DIM) if spec_kind == "flat" else ivf_spec
    index = flat.build_index(x, ids, spec)
    n = index.ntotal
    changed, deleted = ids[10], ids[20]
    far = -x[10]  # antipode: the changed product must move to a completely different place
    new_vec = np.stack([far, clustered(1, seed=7)[0]])
    result = flat.update_index(
        index,
        upsert_ids=[changed, "brand-new"],
        upsert_vectors=new_vec,
        remove_ids=[deleted, "never-existed"],
    )
    assert result.removed == 2 and result.added == 2 and result.ntotal == n == index.ntotal  # -changed -deleted +changed +new
    assert result.missing_remove_ids == ["never-existed"]
    lookup = IdLookup.from_product_ids([*ids, "brand-new"])
    stored = set(lookup.to_product_ids(flat.index_ids(index)).tolist())
    assert deleted not in stored and changed in stored and "brand-new" in stored
    # the changed product is found at its new place ...
    _, got = flat.search(index, far, 1, nprobe=getattr(index, "nlist", None))
    assert lookup.to_product_ids(got)[0, 0] == changed
    # ... and no longer at its old place; the deleted product is gone
    _, got = flat.search(index, np.stack([x[10], x[20]]), 10, nprobe=getattr(index, "nlist", None))
    names = lookup.to_product_ids(got)
    assert changed not in names[0] and deleted not in names[1]
    # other products still map to the right ids (guards the IndexIDMap2-over-IVF renumbering bug)
    _, got = flat.search(index, x[[0, 30, 500]], 1, nprobe=getattr(index, "nlist", None))
    assert lookup.to_product_ids(got)[:, 0].tolist() == [ids[0], ids[30], ids[500]]


def test_update_validates_before_touching_the_index(data):
    x, ids, _ = data
    index = flat.build_index(x[:100], ids[:100], flat_spec.choose_index_spec(100, DIM))
    bad = x[:2].copy()
    bad[1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        flat.update_index(index, upsert_ids=ids[:2], upsert_vectors=bad, remove_ids=ids[50:60])
    assert index.ntotal == 100


def test_hnsw_update_requires_rebuild(data):
    x, ids, _ = data
    spec = flat_spec.spec_from_factory("HNSW8", DIM)
    assert not spec.supports_remove
    index = flat.build_index(x[:300], ids[:300], spec)
    with pytest.raises(errors.RebuildRequiredError, match="rebuild"):
        flat.update_index(index, remove_ids=[ids[0]])


# --- save / load -----------------------------------------------------------------------------


def _save(index, directory: Path, ids, spec) -> dict:
    return flat_files.save_index(
        index, directory,
        {"encoder_fingerprint": FP, "product_ids": ids, "spec": spec, "build_seconds": 0.1},
    )


def _index_of_kind(spec_kind, data, ivf_spec, ivf_index):
    """(spec, index): an exact flat index of all of ``data``, or the module's IVF index."""
    if spec_kind == "ivf":
        return ivf_spec, ivf_index
    x, ids, _ = data
    spec = flat_spec.choose_index_spec(len(x), DIM)
    return spec, flat.build_index(x, ids, spec)


@pytest.mark.parametrize("spec_kind", ["flat", "ivf"])
def test_save_load_round_trip(tmp_path, data, ivf_spec, ivf_index, spec_kind):
    x, ids, q = data
    spec, index = _index_of_kind(spec_kind, data, ivf_spec, ivf_index)
    written = _save(index, tmp_path, ids, spec)
    assert sorted(os.listdir(tmp_path)) == ["index.faiss", "manifest.json"]  # no temp files left
    loaded, manifest = flat_files.load_index(tmp_path, expected_fingerprint=FP)
    assert manifest == json.loads((tmp_path / "manifest.json").read_text()) == written
    assert manifest["count"] == len(x) and manifest["dim"] == DIM
    assert manifest["index_factory"] == spec.factory and manifest["spec"]["factory"] == spec.factory
    assert manifest["faiss_version"] == faiss.__version__ and len(manifest["index_sha256"]) == 64
    for a, b in zip(flat.search(index, q, 10), flat.search(loaded, q, 10)):
        np.testing.assert_array_equal(a, b)
    lookup = IdLookup.from_manifest(manifest)
    assert set(lookup.to_product_ids(flat.index_ids(loaded)).tolist()) == set(ids)
    assert flat_files.check_index(loaded, manifest, x, ids, expected_fingerprint=FP) == []
    if spec_kind == "ivf":  # loaded IVF is still updatable and keeps its tuned nprobe
        assert loaded.nprobe == spec.search_params["nprobe"]
        flat.update_index(loaded, remove_ids=[ids[0]])
        assert loaded.ntotal == len(x) - 1


@pytest.mark.parametrize("spec_kind", ["flat", "ivf"])
def test_mmap_load_is_read_only(tmp_path, data, ivf_spec, ivf_index, spec_kind):
    x, ids, q = data
    spec, index = _index_of_kind(spec_kind, data, ivf_spec, ivf_index)
    _save(index, tmp_path, ids, spec)
    loaded, _ = flat_files.load_index(tmp_path, mmap=True)
    np.testing.assert_array_equal(flat.search(index, q, 5)[1], flat.search(loaded, q, 5)[1])
    assert not flat.supports_remove(loaded)
    with pytest.raises(errors.RebuildRequiredError, match="memory-mapped"):
        flat.update_index(loaded, remove_ids=[ids[0]])
    with pytest.raises(errors.VectorIndexError, match="memory-mapped"):
        flat_files.save_index(loaded, tmp_path / "copy", {"encoder_fingerprint": FP})


@pytest.fixture()
def saved_flat(tmp_path, data):
    x, ids, _ = data
    spec = flat_spec.choose_index_spec(500, DIM)
    _save(flat.build_index(x[:500], ids[:500], spec), tmp_path, ids[:500], spec)
    return tmp_path


def test_open_index_opens_a_flat_folder_behind_the_search_interface(saved_flat, data):
    x, pids_, _ = data
    x, pids_ = x[:500], pids_[:500]
    opened = open_index(saved_flat, expected_fingerprint=FP)
    assert opened.kind == "flat" and sorted(opened.product_ids) == sorted(pids_)
    searcher = opened.searcher
    assert isinstance(searcher, FaissSearcher) and as_searcher(searcher) is searcher
    assert searcher.ntotal == len(pids_) and searcher.d == DIM
    q = x[:3] / np.linalg.norm(x[:3], axis=1, keepdims=True)
    _, found = searcher.search(q, 1)
    assert (found[:, 0] == assign_ids(pids_[:3])).all()
    allowed = assign_ids(pids_[100:110])
    _, found = searcher.search(q, 3, allowed_ids=allowed)
    assert np.isin(found, allowed).all()
    np.testing.assert_allclose(searcher.reconstruct(assign_ids(pids_[:2])), q[:2], atol=1e-6)
    with pytest.raises(errors.FingerprintMismatchError):
        open_index(saved_flat, expected_fingerprint="encoder:other")


def test_truncated_index_file_is_rejected(saved_flat):
    path = saved_flat / "index.faiss"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(errors.IndexCorruptError, match="index.faiss"):
        flat_files.load_index(saved_flat)


def test_flipped_byte_is_rejected(saved_flat):
    path = saved_flat / "index.faiss"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(errors.IndexCorruptError, match="sha256"):
        flat_files.load_index(saved_flat)


def test_garbage_that_matches_the_manifest_is_still_rejected(saved_flat):
    path, mpath = saved_flat / "index.faiss", saved_flat / "manifest.json"
    path.write_bytes(b"not a faiss index at all")
    manifest = json.loads(mpath.read_text())
    manifest.update(index_sha256=store.sha256_of_file(path), index_bytes=path.stat().st_size)
    mpath.write_text(json.dumps(manifest))
    with pytest.raises(errors.IndexCorruptError, match="FAISS cannot read"):
        flat_files.load_index(saved_flat)


@pytest.mark.parametrize("content", [None, "{ half a manifest"])
def test_missing_or_half_written_manifest_is_rejected(saved_flat, content):
    mpath = saved_flat / "manifest.json"
    if content is None:
        mpath.unlink()
    else:
        mpath.write_text(content)
    with pytest.raises(errors.IndexCorruptError, match="manifest.json"):
        flat_files.load_index(saved_flat)


def test_fingerprint_mismatch_is_rejected(saved_flat):
    with pytest.raises(errors.FingerprintMismatchError, match="encoder:other"):
        flat_files.load_index(saved_flat, expected_fingerprint="encoder:other")
    assert issubclass(errors.FingerprintMismatchError, errors.IndexCorruptError)


def test_failed_save_keeps_previous_version(saved_flat, data, monkeypatch):
    x, ids, _ = data
    before = (saved_flat / "manifest.json").read_text()
    index = flat.build_index(x[:10], ids[:10], flat_spec.choose_index_spec(10, DIM))

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(faiss, "write_index", boom)
    with pytest.raises(OSError, match="disk full"):
        flat_files.save_index(index, saved_flat, {"encoder_fingerprint": FP})
    assert sorted(os.listdir(saved_flat)) == ["index.faiss", "manifest.json"]
    assert (saved_flat / "manifest.json").read_text() == before
    assert flat_files.load_index(saved_flat)[0].ntotal == 500


def test_save_rejects_product_ids_that_do_not_match(tmp_path, data):
    x, ids, _ = data
    index = flat.build_index(x[:10], ids[:10], flat_spec.choose_index_spec(10, DIM))
    with pytest.raises(ValueError, match="do not match"):
        flat_files.save_index(index, tmp_path, {"encoder_fingerprint": FP, "product_ids": ids[:9]})
    with pytest.raises(ValueError, match="encoder_fingerprint"):
        flat_files.save_index(index, tmp_path, {"product_ids": ids[:10]})


# --- checks / device -------------------------------------------------------------------------


def test_check_index_reports_problems(tmp_path, data):
    x, ids, _ = data
    x, ids = x[:200].copy(), ids[:200]
    spec = flat_spec.choose_index_spec(200, DIM)
    index = flat.build_index(x, ids, spec)
    manifest = _save(index, tmp_path, ids, spec)
    assert flat_files.check_index(index, manifest, x, ids, expected_fingerprint=FP) == []

    table_ids = [*ids[1:], "new-product"]  # sku-00000 dropped from the table, one product added
    table_x = np.concatenate([x[1:], x[:1]])
    table_x[5] = np.nan
    table_x[6] = 0.0
    problems = "\n".join(flat_files.check_index(index, manifest, table_x, table_ids, expected_fingerprint="enc:v2"))
    for needle in ("fingerprint mismatch", "NaN/inf", "zero vector", "missing from the index",
                   "new-product", "not in the table", "sku-00000"):
        assert needle in problems, (needle, problems)

    stale = x.copy()
    stale[:100] = -stale[:100]  # re-encoded table, index not updated
    problems = flat_files.check_index(index, manifest, stale, ids)
    assert len(problems) == 1 and "differs from the table" in problems[0]

    flat.update_index(index, remove_ids=[ids[3]])
    problems = "\n".join(flat_files.check_index(index, manifest, x, ids))
    assert "manifest count 200 != index ntotal 199" in problems and "sku-00003" in problems


def test_to_device(data):
    x, ids, _ = data
    index = flat.build_index(x[:100], ids[:100], flat_spec.choose_index_spec(100, DIM))
    assert flat.to_device(index, "cpu") is index
    if flat.num_gpus() == 0:
        assert flat.to_device(index, "auto") is index
        with pytest.raises(errors.VectorIndexError, match="no GPU"):
            flat.to_device(index, "cuda")
    else:  # pragma: no cover - only on GPU machines with faiss-gpu
        gpu = flat.to_device(index, "cuda")
        np.testing.assert_array_equal(flat.search(gpu, x[:5], 3)[1], flat.search(index, x[:5], 3)[1])


def test_in_place_centring_equals_out_of_place_and_chunked_mean_agrees():
    """A 1M-product catalog is centred without extra copies; the numbers stay those of small catalogs."""
    from scene_assets.matching import catalog_mean
    from scene_assets.regions import center_and_normalize, center_and_normalize_in_place

    rng = np.random.default_rng(3)
    x = rng.standard_normal((1000, 24)).astype(np.float32) + 0.5
    mean = catalog_mean(x)
    chunked_mean = catalog_mean(x, chunk_rows=128)  # 8 chunks summed in float64
    np.testing.assert_allclose(chunked_mean, mean, rtol=0, atol=1e-6)
    want = center_and_normalize(x, mean)
    got = center_and_normalize_in_place(x.copy(), mean, chunk_rows=97)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(center_and_normalize_in_place(x.copy(), None, chunk_rows=97), center_and_normalize(x))
    with pytest.raises(ValueError, match="writable float32"):
        center_and_normalize_in_place(x.astype(np.float64), mean)
