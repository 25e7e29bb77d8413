"""Tests for scene_assets.scene_analysis and scene_assets.regions (offline, CPU, no dataset)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from scene_assets import vocabulary as vocab
from scene_assets.encoders import FakeEncoder
from scene_assets.regions import (
    RegionConfig,
    center_and_normalize,
    compute_regions,
    input_size_for,
    pool_regions,
    region_layout,
)
from scene_assets.scene_analysis import (
    ROOM_TYPES,
    STYLES,
    SceneAnalysis,
    analyze_scene,
    color_palette,
    lab_to_rgb,
    rgb_to_lab,
    softmax,
)


def _room_image(size=(320, 240)) -> Image.Image:
    img = Image.new("RGB", size, (236, 232, 224))
    d = ImageDraw.Draw(img)
    w, h = size
    d.rectangle([0, int(h * 0.7), w, h], fill=(120, 80, 50))
    d.rectangle([int(w * 0.1), int(h * 0.4), int(w * 0.5), int(h * 0.75)], fill=(40, 80, 170))
    d.ellipse([int(w * 0.65), int(h * 0.1), int(w * 0.85), int(h * 0.3)], fill=(240, 205, 50))
    return img


# --------------------------------------------------------------------------------------------
# colour science


@pytest.mark.parametrize(
    "rgb, lab",
    [
        ((255, 255, 255), (100.0, 0.0, 0.0)),
        ((0, 0, 0), (0.0, 0.0, 0.0)),
        ((255, 0, 0), (53.24, 80.09, 67.20)),
        ((0, 255, 0), (87.73, -86.18, 83.18)),
        ((0, 0, 255), (32.30, 79.19, -107.86)),
        ((128, 128, 128), (53.59, 0.0, 0.0)),
        ((255, 255, 0), (97.14, -21.55, 94.48)),
    ],
)
def test_rgb_to_lab_known_values(rgb, lab):
    np.testing.assert_allclose(rgb_to_lab(np.array(rgb)), lab, atol=0.02)


def test_lab_round_trip_and_shapes():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(4, 5, 3)).astype(np.float64)
    lab = rgb_to_lab(rgb)
    assert lab.shape == (4, 5, 3)
    np.testing.assert_allclose(lab_to_rgb(lab), rgb, atol=1e-6)


def test_palette_two_colours_names_and_shares():
    img = Image.new("RGB", (100, 100), vocab.COLOR_RGB["red"])
    img.paste(vocab.COLOR_RGB["blue"], (0, 0, 30, 100))  # 30 % blue
    pal = color_palette(img)
    assert [p.name for p in pal] == ["red", "blue"]
    assert pal[0].share == pytest.approx(0.7, abs=0.03)
    assert pal[1].share == pytest.approx(0.3, abs=0.03)
    assert sum(p.share for p in pal) == pytest.approx(1.0)


def test_palette_merges_clusters_with_the_same_name_and_is_seeded():
    # a gradient of greens: k-means splits it into several clusters, all named green
    arr = np.zeros((60, 60, 3), dtype=np.uint8)
    arr[..., 1] = np.linspace(110, 160, 60, dtype=np.uint8)[None, :]
    arr[..., 0] = 60
    arr[..., 2] = 60
    arr[:, :15] = vocab.COLOR_RGB["white"]
    img = Image.fromarray(arr)
    pal = color_palette(img, n_colors=6)
    names = [p.name for p in pal]
    assert len(names) == len(set(names))
    assert set(names) == {"green", "white"}
    assert dict((p.name, p.share) for p in pal)["green"] == pytest.approx(0.75, abs=0.03)
    assert [p.to_dict() for p in color_palette(img)] == [p.to_dict() for p in pal]


def test_palette_single_colour_and_large_image():
    pal = color_palette(Image.new("RGB", (2000, 1000), (26, 26, 26)))
    assert len(pal) == 1 and pal[0].name == "black" and pal[0].share == pytest.approx(1.0)
    assert pal[0].hex.startswith("#")


# --------------------------------------------------------------------------------------------
# probabilities


def test_softmax_sums_to_one_and_is_stable():
    p = softmax(np.array([1000.0, 1001.0, 999.0]))
    assert p.sum() == pytest.approx(1.0) and np.argmax(p) == 1


def test_room_and_style_probabilities_sum_to_one():
    enc = FakeEncoder(dim=64)
    res = analyze_scene(_room_image(), enc, caption="a cosy reading corner")
    assert isinstance(res, SceneAnalysis)
    assert list(res.room_probs) == list(ROOM_TYPES) and list(res.style_probs) == list(STYLES)
    assert sum(res.room_probs.values()) == pytest.approx(1.0)
    assert sum(res.style_probs.values()) == pytest.approx(1.0)
    assert all(0.0 <= v <= 1.0 for v in res.room_probs.values())
    assert res.room_type in ROOM_TYPES and res.style in STYLES
    d = res.to_dict()
    json.dumps(d)
    assert d["room_source"] == "zero_shot+caption"
    assert d["palette"] and d["timings_ms"]["palette"] >= 0


def test_caption_is_text_evidence():
    enc = FakeEncoder(dim=256)
    # with the fake encoder identical text gives identical vectors: the caption equals a kitchen prompt
    res = analyze_scene(_room_image(), enc, caption="a photo of a kitchen", image_weight=0.0)
    assert res.room_type == "Kitchen"
    assert res.room_probs["Kitchen"] > 0.5
    assert res.room_source == "caption"


def test_softmax_temperature_not_raw_cosines():
    enc = FakeEncoder(dim=256)
    sharp = analyze_scene(_room_image(), enc, caption="a photo of a kitchen", image_weight=0.0, temperature=0.02)
    soft = analyze_scene(_room_image(), enc, caption="a photo of a kitchen", image_weight=0.0, temperature=0.5)
    assert sharp.room_probs["Kitchen"] > soft.room_probs["Kitchen"] > 1 / len(ROOM_TYPES)


class _UntrainedHeadEncoder(FakeEncoder):
    image_text_aligned = False


def test_untrained_projection_gives_uniform_unless_caption():
    enc = _UntrainedHeadEncoder(dim=32)
    res = analyze_scene(_room_image(), enc)
    assert res.room_source == "uniform"
    np.testing.assert_allclose(list(res.room_probs.values()), 1 / len(ROOM_TYPES))
    assert res.room_type is None and res.style is None and res.to_dict()["room_type"] is None
    forced = analyze_scene(_room_image(), enc, image_weight=1.0)
    assert forced.room_source == "zero_shot"


class _Clf:
    classes_ = np.array(["Kitchen", "Bedroom", "Garage"])

    def __init__(self):
        self.seen = None

    def predict_proba(self, X):
        self.seen = X
        return np.array([[0.2, 0.7, 0.1]])


def test_fitted_room_classifier_replaces_zero_shot():
    enc = FakeEncoder(dim=32)
    clf = _Clf()
    feats = np.ones(1280, dtype=np.float32)
    res = analyze_scene(_room_image(), enc, room_classifier=clf, trunk_features=feats)
    assert clf.seen.shape == (1, 1280)
    assert res.room_source == "classifier"
    assert res.room_type == "Bedroom"
    # "Garage" is unknown: its mass is dropped and the rest renormalised
    assert res.room_probs["Bedroom"] == pytest.approx(0.7 / 0.9)
    assert res.room_probs["Dining"] == pytest.approx(0.0, abs=1e-6)
    # tuple form with an explicit class list
    res2 = analyze_scene(_room_image(), enc, room_classifier=(clf, ["Kitchen", "Bedroom", "Garage"]),
                         trunk_features=feats)
    assert res2.room_probs == pytest.approx(res.room_probs)


# --------------------------------------------------------------------------------------------
# regions


def test_input_size_rounds_to_stride_and_keeps_aspect():
    cfg = RegionConfig(short_side=384, max_long_side=768)
    assert input_size_for(1024, 765, cfg) == (384, 512)
    assert input_size_for(765, 1024, cfg) == (512, 384)
    assert input_size_for(3000, 500, cfg) == (128, 768)  # long side capped


def test_region_layout_counts_and_cover():
    cfg = RegionConfig(grids=(2, 3, 4))
    rects, labels = region_layout(12, 16, cfg)
    assert len(labels) == 1 + 4 + 9 + 16 == rects.shape[0]
    assert labels[0] == "whole" and tuple(rects[0]) == (0, 12, 0, 16)
    for g in (2, 3, 4):
        cells = rects[[i for i, lab in enumerate(labels) if lab.startswith(f"grid{g}:")]]
        area = ((cells[:, 1] - cells[:, 0]) * (cells[:, 3] - cells[:, 2])).sum()
        assert area == 12 * 16  # the cells of a grid tile the map exactly
    rects_w, labels_w = region_layout(12, 16, RegionConfig(grids=(), windows=((0.5, 0.25),)))
    assert len(labels_w) == 1 + 9
    assert all((r[1] - r[0], r[3] - r[2]) == (6, 8) for r in rects_w[1:])


def test_pool_regions_matches_direct_mean():
    rng = np.random.default_rng(1)
    fmap = rng.standard_normal((8, 5, 7)).astype(np.float32)
    rects, _ = region_layout(5, 7, RegionConfig(grids=(2, 3), windows=((0.6, 0.3),)))
    pooled = pool_regions(fmap, rects)
    gem = pool_regions(np.abs(fmap), rects, power=3.0)
    for (r0, r1, c0, c1), got, got_gem in zip(rects, pooled, gem):
        np.testing.assert_allclose(got, fmap[:, r0:r1, c0:c1].mean(axis=(1, 2)), atol=1e-5)
        cell = np.abs(fmap[:, r0:r1, c0:c1]).astype(np.float64)
        np.testing.assert_allclose(got_gem, np.cbrt((cell ** 3).mean(axis=(1, 2))), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError):
        RegionConfig(pool_power=0.5)


def test_center_and_normalize():
    x = np.array([[3.0, 4.0], [1.0, 0.0]])
    np.testing.assert_allclose(np.linalg.norm(center_and_normalize(x), axis=1), 1.0, atol=1e-6)
    m = np.array([0.5, 0.5])
    y = center_and_normalize(x, m)
    np.testing.assert_allclose(y[1], np.array([1.0, -1.0]) / np.sqrt(2), atol=1e-6)  # [1, 0] - m, normalised


def test_regions_from_one_pass_default_encoder(default_encoder):
    img = _room_image((400, 300))
    regs = compute_regions(img, default_encoder, RegionConfig(short_side=224, max_long_side=448))
    assert regs.method == "feature_map"
    assert len(regs) == 30
    assert regs.input_size == (224, 288) and regs.map_size == (7, 9)
    assert regs.trunk.shape == (30, 1280) and regs.joint.shape == (30, 384)
    np.testing.assert_allclose(np.linalg.norm(regs.joint, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(regs.vectors("trunk"), axis=1), 1.0, atol=1e-5)
    # boxes in original pixels: whole image first, every box inside the image
    np.testing.assert_allclose(regs.boxes[0], [0, 0, 400, 300])
    assert (regs.boxes[:, 0] >= 0).all() and (regs.boxes[:, 2] <= 400 + 1e-6).all()
    assert (regs.boxes[:, 1] >= 0).all() and (regs.boxes[:, 3] <= 300 + 1e-6).all()
    assert (regs.boxes[:, 2] > regs.boxes[:, 0]).all() and (regs.boxes[:, 3] > regs.boxes[:, 1]).all()
    grid2 = [i for i, lab in enumerate(regs.labels) if lab.startswith("grid2:")]
    # 7 x 9 map split in two: rows 0..4 of 7, columns 0..5 of 9 (cell edges rounded)
    np.testing.assert_allclose(regs.boxes[grid2[0]], [0, 0, 400 * 5 / 9, 300 * 4 / 7])
    # the whole-map region is the GeM of the map; the plain average is kept for classifiers
    fmap = default_encoder.image_feature_map(img, size=regs.input_size)
    np.testing.assert_allclose(regs.global_average, fmap.mean(axis=(1, 2)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(regs.trunk[0], np.cbrt((fmap.astype(np.float64) ** 3).mean(axis=(1, 2))),
                               rtol=1e-4, atol=1e-5)
    avg = compute_regions(img, default_encoder, RegionConfig(short_side=224, max_long_side=448, pool_power=1))
    np.testing.assert_allclose(avg.trunk[0], fmap.mean(axis=(1, 2)), rtol=1e-4, atol=1e-5)
    json.dumps(regs.to_dict())


def test_regions_crop_fallback_for_encoders_without_feature_map():
    enc = FakeEncoder(dim=16)
    regs = compute_regions(_room_image(), enc, RegionConfig(short_side=96, max_long_side=192, grids=(2,)))
    assert regs.method == "crops" and regs.trunk is None
    assert regs.joint.shape == (5, 16)
    np.testing.assert_allclose(np.linalg.norm(regs.vectors("joint"), axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError):
        regs.vectors("trunk")
