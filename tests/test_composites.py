"""Synthetic composites (scene_assets.composites) and the projection trained on them: the cut-out,
the pasted pairs, their split discipline in the evaluation folds, and that the pairs teach the map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scene_assets.composites import CompositeConfig, CompositePairs, make_composites, product_cutout
from scene_assets.learned import ProjectionConfig, fit_region_projection


def _product_shot(path: Path, color: tuple[int, int, int], box=(20, 30, 70, 90), size=(100, 120)) -> Path:
    img = Image.new("RGB", size, (255, 255, 255))
    img.paste(Image.new("RGB", (box[2] - box[0], box[3] - box[1]), color), box[:2])
    img.save(path)
    return path


def _scene(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 200, size=(240, 320, 3), dtype=np.uint8)).save(path)
    return path


def test_cutout_crops_the_object_off_its_white_background(tmp_path):
    crop, mask = product_cutout(Image.open(_product_shot(tmp_path / "p.png", (200, 30, 30))))
    assert crop.size == mask.size
    w, h = crop.size
    assert abs(w - 50) <= 2 and abs(h - 60) <= 2  # the 50 x 60 red box, give or take the mask's edge filter
    m = np.asarray(mask)
    assert m[h // 2, w // 2] > 250  # opaque inside the object
    # a photo with no white background (a room, a texture) has nothing to cut out
    assert product_cutout(Image.open(_scene(tmp_path / "s.png", 0))) is None
    assert product_cutout(Image.new("RGB", (50, 50), (255, 255, 255))) is None


def _inputs(tmp_path: Path):
    colors = [(200, 30, 30), (30, 160, 40), (40, 40, 190), (120, 90, 20)]
    products = [(f"p{i}", _product_shot(tmp_path / f"p{i}.png", c)) for i, c in enumerate(colors)]
    scenes = [(f"s{i}", _scene(tmp_path / f"s{i}.png", i)) for i in range(3)]
    return scenes, products


def test_make_composites_records_pairs_sources_and_skips(tmp_path):
    from scene_assets.encoders import build_encoder

    scenes, products = _inputs(tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    products.append(("broken", tmp_path / "broken.jpg"))
    scenes.append(("gone", tmp_path / "missing.jpg"))
    encoder = build_encoder(kind="fake")
    cfg = CompositeConfig(per_scene=2, pastes=3, seed=1)
    done: list[int] = []
    pairs = make_composites(scenes, products, encoder, config=cfg, progress=done.append)
    assert len(pairs) == 3 * 2 * 3 and pairs.vectors.shape == (18, encoder.dim) and pairs.space == "joint"
    assert pairs.source_scenes == [s for s, _ in scenes[:3] for _ in range(6)]
    assert set(pairs.product_ids) <= {"p0", "p1", "p2", "p3"}
    reasons = dict(pairs.skipped)
    assert "unreadable" in reasons["gone"] and "broken.jpg" in reasons["broken"]  # named, and the run went on
    assert done == [1, 2, 3]  # the unreadable scene is skipped before progress
    again = make_composites(scenes, products, encoder, config=cfg)
    np.testing.assert_array_equal(again.vectors, pairs.vectors)  # seeded: the same composites
    assert again.product_ids == pairs.product_ids

    # a fold sees the pairs of its training scenes only
    part = pairs.for_scenes(["s0", "s2"])
    assert len(part) == 12 and set(part.source_scenes) == {"s0", "s2"}
    idx, rows = part.rows({"p1": 0, "p2": 1})
    assert all(part.product_ids[i] in ("p1", "p2") for i in idx) and set(rows.tolist()) <= {0, 1}

    pairs.save(tmp_path / "c.npz")
    back = CompositePairs.load(tmp_path / "c.npz")
    np.testing.assert_array_equal(back.vectors, pairs.vectors)
    assert (back.product_ids, back.source_scenes, back.space, back.skipped) == (
        pairs.product_ids, pairs.source_scenes, pairs.space, pairs.skipped)


def test_make_composites_pools_trunk_regions_of_the_default_encoder(tmp_path, default_encoder):
    scenes, products = _inputs(tmp_path)
    pairs = make_composites(scenes[:1], products, default_encoder, config=CompositeConfig(per_scene=1, pastes=2))
    assert pairs.space == "trunk" and pairs.vectors.shape == (2, default_encoder.trunk_dim)
    assert np.isfinite(pairs.vectors).all() and (pairs.vectors >= 0).all()  # GeM of post-activation cells


def test_composite_config_round_trip_and_bad_values():
    cfg = CompositeConfig(per_scene=5, scale=(0.3, 0.4))
    assert CompositeConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="scale"):
        CompositeConfig(scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="per_scene"):
        CompositeConfig(per_scene=-1)


def _mrr(proj, products, queries, positives) -> float:
    pp = proj.transform_products(products)
    rr = []
    for q, pos in zip(queries, positives):
        order = np.argsort(-proj.scores(q, pp))
        rank = np.flatnonzero(np.isin(order, pos))[0]
        rr.append(1.0 / (rank + 1))
    return float(np.mean(rr))


def test_pairs_teach_the_map_when_labeled_scenes_are_few(one_torch_thread):
    # regions live in a distorted space; 6 labeled scenes cannot learn it, 400 exact pairs can
    rng = np.random.default_rng(0)
    n, d = 60, 32
    products = rng.normal(size=(n, d)).astype(np.float32)
    products /= np.linalg.norm(products, axis=1, keepdims=True)
    distort = np.eye(d) + 0.9 * rng.normal(size=(d, d)) / np.sqrt(d)

    def regions(rows):
        q = products[rows] @ distort + 0.3 * rng.normal(size=(len(rows), d))
        return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)

    scene_pos = [rng.choice(n, 3, replace=False) for _ in range(6)]
    scene_q = [regions(p) for p in scene_pos]
    pair_rows = rng.integers(0, n, 400)
    pair_q = regions(pair_rows)
    test_pos = [rng.choice(n, 2, replace=False) for _ in range(40)]
    test_q = [regions(p) for p in test_pos]
    cfg = ProjectionConfig(dim=16, pca_dim=32, epochs=40, learning_rate=2e-2, composite_batch=64)
    labels_only = fit_region_projection(scene_q, scene_pos, products, cfg)
    with_pairs = fit_region_projection(scene_q, scene_pos, products, cfg, pair_queries=pair_q, pair_products=pair_rows)
    assert with_pairs.config["training_pairs"] == 400 and labels_only.config["training_pairs"] == 0
    before, after = _mrr(labels_only, products, test_q, test_pos), _mrr(with_pairs, products, test_q, test_pos)
    assert after > before + 0.1, (before, after)
    with pytest.raises(ValueError, match="pair"):
        fit_region_projection(scene_q, scene_pos, products, cfg, pair_queries=pair_q, pair_products=pair_rows[:3])
