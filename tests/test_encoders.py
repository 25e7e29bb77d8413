"""Tests for scene_assets.encoders / scene_assets.alignment (offline, CPU)."""

from __future__ import annotations

import dataclasses
import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from scene_assets.alignment import (
    AlignmentResult,
    load_projection_artifact,
    save_projection,
    state_dict_sha256,
    train_alignment,
)
from scene_assets.encoders import (
    DEFAULT_PREPROCESSING,
    ENCODER_KINDS,
    DefaultEncoder,
    DefaultOptions,
    EncoderLoadError,
    EncoderSpec,
    FakeEncoder,
    FakeOptions,
    FeatureMapEncoder,
    OpenClipEncoder,
    OpenClipOptions,
    SentenceTransformerEncoder,
    TextOnlyEncoderError,
    build_encoder,
    default_trunk_weights_path,
    encoder_class,
    option_names,
)
from tests.golden import encoder_vectors as golden

COLORS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220), "yellow": (240, 220, 20)}
SHAPES = ("square", "circle", "triangle", "stripes")


def _scene(color: str, shape: str, size=(160, 120), bg=(235, 235, 230)) -> Image.Image:
    img = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(img)
    w, h = size
    c = COLORS[color]
    if shape == "square":
        d.rectangle([w * 0.25, h * 0.2, w * 0.75, h * 0.8], fill=c)
    elif shape == "circle":
        d.ellipse([w * 0.25, h * 0.15, w * 0.75, h * 0.85], fill=c)
    elif shape == "triangle":
        d.polygon([(w * 0.5, h * 0.1), (w * 0.85, h * 0.9), (w * 0.15, h * 0.9)], fill=c)
    else:
        for x in range(0, w, 16):
            d.rectangle([x, 0, x + 7, h], fill=c)
    return img


class _Collate:
    def __init__(self, tf):
        self.tf = tf

    def __call__(self, items):
        return torch.stack([self.tf(i) for i in items])


def _unit(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x, axis=1)


# ------------------------------------------------------------------------------ spec / fake


def test_spec_is_frozen_and_validated():
    spec = EncoderSpec()
    assert spec.kind == "default" and spec.device == "auto" and spec.options == DefaultOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.kind = "fake"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.options.seed = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="model_name"):
        EncoderSpec(kind="open_clip")
    with pytest.raises(ValueError):
        EncoderSpec(batch_size=0)
    with pytest.raises(ValueError, match="dim"):
        FakeOptions(dim=0)
    with pytest.raises(TypeError, match="FakeOptions"):
        EncoderSpec(kind="fake", options=DefaultOptions())
    a, b = EncoderSpec(kind="fake", options=FakeOptions(dim=8)), EncoderSpec(kind="fake", options=FakeOptions(dim=8))
    assert a == b and hash(a) == hash(b) and a != EncoderSpec(kind="fake", options=FakeOptions(dim=9))


def test_unknown_kind_lists_the_valid_ones():
    assert ENCODER_KINDS == ("default", "open_clip", "sentence_transformers", "fake")
    for attempt in (lambda: EncoderSpec(kind="nope"), lambda: build_encoder(kind="nope"), lambda: encoder_class("nope")):
        with pytest.raises(ValueError, match="unknown encoder kind 'nope'; valid kinds: default, open_clip, sentence_transformers, fake"):
            attempt()
    with pytest.raises(ValueError, match=r"unknown encoder setting\(s\) \['dimm'\]; kind 'fake' takes"):
        build_encoder(kind="fake", dimm=8)


def test_spec_flat_form_round_trips_and_reads_only_its_kinds_options():
    specs = [EncoderSpec(), EncoderSpec(kind="fake", options=FakeOptions(dim=8, seed=2), device="cpu"),
             EncoderSpec(kind="open_clip", options=OpenClipOptions(model_name="ViT-B-32", pretrained="x.pt"), batch_size=4),
             EncoderSpec(kind="sentence_transformers", text_batch_size=7)]
    for spec in specs:
        flat = spec.to_dict()
        assert set(flat) == {"kind", "device", "precision", "batch_size", "text_batch_size", *option_names(spec.kind)}
        assert EncoderSpec.from_dict(json.loads(json.dumps(flat))) == spec
    # a flat config holding every kind's fields (the resource's, an older bundle.json's): only the kind's are read
    every_field = {"kind": "fake", "model_name": None, "pretrained": None, "projection_path": "head.pt", "dim": 12,
                   "seed": 3, "device": "cpu", "trunk_weights_path": None, "cache_dir": None}
    assert EncoderSpec.from_dict(every_field) == EncoderSpec(kind="fake", options=FakeOptions(dim=12, seed=3), device="cpu")
    # replacing the kind keeps the settings the kinds share
    assert specs[1].replace(kind="default") == EncoderSpec(options=DefaultOptions(seed=2), device="cpu")


def test_each_kind_builds_its_own_class_from_its_options():
    built = {
        "default": build_encoder(kind="default", device="cpu", seed=4, batch_size=3),
        "open_clip": build_encoder(kind="open_clip", model_name="ViT-B-32", device="cpu"),
        "sentence_transformers": build_encoder(kind="sentence_transformers", device="cpu"),
        "fake": build_encoder(kind="fake", dim=5),
    }
    classes = {"default": DefaultEncoder, "open_clip": OpenClipEncoder,
               "sentence_transformers": SentenceTransformerEncoder, "fake": FakeEncoder}
    for kind, encoder in built.items():
        assert type(encoder) is classes[kind] is encoder_class(kind) and encoder.kind == kind
        assert not encoder.is_loaded
    assert built["default"].seed == 4 and built["default"].batch_size == 3
    assert built["fake"].dim == 5
    # the trunk / feature-map interface is declared by the class, not probed
    assert [kind for kind, encoder in built.items() if isinstance(encoder, FeatureMapEncoder)] == ["default"]
    assert all(encoder.image_text_aligned for kind, encoder in built.items() if kind != "default")
    assert built["default"].image_text_aligned is False  # untrained (random) projection head


def test_weights_load_once_under_concurrent_first_use():
    loads = []
    gate = threading.Event()

    class SlowToLoad(FakeEncoder):
        def _load(self):
            loads.append(threading.get_ident())
            gate.wait(1.0)
            return object()

    encoder = SlowToLoad(8)
    assert not encoder.is_loaded
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(lambda: encoder.model) for _ in range(8)]
        time.sleep(0.05)
        gate.set()
        models = [f.result() for f in futures]
    assert len(loads) == 1 and encoder.is_loaded and all(m is models[0] for m in models)
    with pytest.raises(NotImplementedError, match="no model"):
        FakeEncoder(8).model


def test_encoder_resource_offers_every_kinds_options():
    from pipelines.embeddings.resources import EncoderResource

    fields = EncoderResource.model_fields
    for kind in ENCODER_KINDS:
        for name in option_names(kind):
            if name != "projection_path":  # the trained head comes from the image_text_alignment asset
                assert name in fields and fields[name].description, (kind, name)
    assert EncoderResource().spec() == EncoderSpec(batch_size=16)  # the default: offline default encoder
    assert EncoderResource().spec(projection_path="head.pt").options.projection_path == "head.pt"
    assert EncoderResource(kind="fake", dim=16, model_name="ignored").spec(projection_path="head.pt") == \
        EncoderSpec(kind="fake", options=FakeOptions(dim=16), batch_size=16)
    clip = EncoderResource(kind="open_clip", model_name="ViT-B-32", checkpoint_path="/w.pt", device="cpu").spec()
    assert clip.options == OpenClipOptions(model_name="ViT-B-32", checkpoint_path="/w.pt") and clip.device == "cpu"
    with pytest.raises(ValueError, match="valid kinds"):
        EncoderResource(kind="clip").spec()


def test_fake_encoder_deterministic():
    a = build_encoder(kind="fake", dim=24)
    b = FakeEncoder(24)
    assert isinstance(a, FakeEncoder) and a.dim == 24
    texts = ["grey sofa", "oak table", "grey sofa"]
    ta, tb = a.encode_texts(texts), b.encode_texts(texts)
    assert ta.shape == (3, 24) and ta.dtype == np.float32
    np.testing.assert_array_equal(ta, tb)
    np.testing.assert_allclose(_unit(ta), 1.0, atol=1e-6)
    np.testing.assert_array_equal(ta[0], ta[2])
    assert abs(float(ta[0] @ ta[1])) < 0.9

    imgs = [_scene("red", "square"), _scene("blue", "circle"), _scene("red", "square")]
    ia = a.encode_images(imgs)
    np.testing.assert_array_equal(ia, b.encode_images(imgs))
    np.testing.assert_array_equal(ia[0], ia[2])
    assert not np.allclose(ia[0], ia[1])
    # DataLoader path == convenience path
    batch = torch.stack([a.preprocess_image(im) for im in imgs])
    np.testing.assert_array_equal(a.encode_image_tensors(batch), ia)

    assert a.encode_texts([]).shape == (0, 24) and a.encode_images([]).shape == (0, 24)
    fp = a.fingerprint()
    assert fp == b.fingerprint() and len(fp) == 16 and int(fp, 16) >= 0
    assert FakeEncoder(24, seed=1).fingerprint() != fp
    assert FakeEncoder(25).fingerprint() != fp
    assert not np.allclose(FakeEncoder(24, seed=1).encode_texts(["grey sofa"]), ta[:1])


# ------------------------------------------------------------------------------ default encoder


def test_default_encoder_is_lazy_and_fingerprints_without_loading():
    enc = build_encoder(EncoderSpec(device="cpu"))
    assert isinstance(enc, DefaultEncoder) and not enc.is_loaded
    info = enc.fingerprint_info()
    assert not enc.is_loaded
    assert info["projection"] == "untrained"
    assert info["embed_dim"] == 384 == enc.dim
    assert info["model_name"]
    assert len(info["weights_sha256"]["image_trunk"]) == 64
    assert len(info["weights_sha256"]["text_tower"]) == 64
    for lib in ("torch", "open_clip_torch", "timm", "sentence-transformers"):
        assert info["library_versions"][lib]
    assert enc.fingerprint() == build_encoder(EncoderSpec(device="cpu")).fingerprint()
    assert enc.fingerprint() != build_encoder(device="cpu", seed=1).fingerprint()
    json.dumps(info)  # serialisable (goes into asset metadata)


def test_default_trunk_weights_equal_packaged_pth(default_encoder):
    report = default_encoder.verify_trunk_weights()
    assert report["tensors_loaded"] == report["tensors_verified_equal"] == 294
    src = torch.load(default_trunk_weights_path(), map_location="cpu", weights_only=True)
    src_tensors = [v for k, v in src.items() if not k.startswith("_fc.")]
    trunk_sd = default_encoder.model.visual.trunk.state_dict()
    assert len(trunk_sd) == len(src_tensors)
    for (name, got), want in zip(trunk_sd.items(), src_tensors):
        assert torch.equal(got.cpu(), want), name
    # spot-check named tensors too
    assert torch.equal(trunk_sd["conv_stem.weight"], src["_conv_stem.weight"])
    assert torch.equal(trunk_sd["bn2.running_var"], src["_bn1.running_var"])
    # it is an open_clip CustomTextCLIP with a timm trunk and a HF text tower
    import open_clip

    assert isinstance(default_encoder.model, open_clip.CustomTextCLIP)
    assert type(default_encoder.model.visual.trunk).__name__ == "EfficientNet"


def test_default_preprocessing_config(default_encoder):
    info = default_encoder.fingerprint_info()
    pp = info["preprocessing"]
    assert pp["resize"] == 256 and pp["crop"] == 224
    assert pp["mean"] == [0.5, 0.5, 0.5] and pp["std"] == [0.5, 0.5, 0.5]
    assert pp["interpolation"] == "bicubic"
    assert pp == DEFAULT_PREPROCESSING
    white = default_encoder.preprocess_image(Image.new("RGB", (400, 300), (255, 255, 255)))
    black = default_encoder.preprocess_image(Image.new("L", (300, 400), 0))
    assert tuple(white.shape) == tuple(black.shape) == (3, 224, 224)
    assert torch.allclose(white, torch.ones_like(white)) and torch.allclose(black, -torch.ones_like(black))
    # centre crop of a resize-to-256: a 256x256 image with a 16px border is cropped to its centre
    img = Image.new("RGB", (256, 256), (255, 255, 255))
    ImageDraw.Draw(img).rectangle([0, 0, 255, 15], fill=(0, 0, 0))
    assert torch.allclose(default_encoder.preprocess_image(img), torch.ones(3, 224, 224))
    assert default_encoder.model.visual.preprocess_cfg["mean"] == (0.5, 0.5, 0.5)


def test_default_shapes_and_normalisation(default_encoder):
    imgs = [
        _scene("red", "square"),
        _scene("blue", "circle", size=(300, 200)).convert("RGBA"),
        _scene("green", "stripes", size=(90, 200)).convert("L"),
    ]
    emb = default_encoder.encode_images(imgs, batch_size=2)
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(_unit(emb), 1.0, atol=1e-5)
    # batch composition does not change results
    np.testing.assert_allclose(default_encoder.encode_images(imgs[:1]), emb[:1], atol=1e-5)

    txt = default_encoder.encode_texts(["a grey fabric sofa", "oak dining table", ""])
    assert txt.shape == (3, 384) and txt.dtype == np.float32
    np.testing.assert_allclose(_unit(txt), 1.0, atol=1e-5)
    assert default_encoder.encode_texts([]).shape == (0, 384)
    assert default_encoder.encode_images([]).shape == (0, 384)

    feats = default_encoder.encode_image_trunk_features(imgs)
    assert feats.shape == (3, 1280) and feats.dtype == np.float32
    np.testing.assert_allclose(default_encoder.project_trunk_features(feats), emb, atol=1e-5)

    fmap = default_encoder.image_feature_map(imgs[0])
    assert fmap.shape == (1280, 7, 7)
    np.testing.assert_allclose(fmap.mean(axis=(1, 2)), feats[0], atol=1e-4)
    assert default_encoder.image_feature_map(imgs[1], size=(320, 448)).shape == (1280, 10, 14)


@pytest.fixture(scope="module")
def torch_runtime_encoder() -> DefaultEncoder:
    encoder = build_encoder(EncoderSpec(kind="default", device="cpu", options=DefaultOptions(trunk_runtime="torch")))
    encoder.model  # noqa: B018 (loads the weights)
    return encoder


def test_onnx_runtime_trunk_gives_torch_features(default_encoder, torch_runtime_encoder):
    """The default CPU runtime is ONNX Runtime; pooled features and feature maps of any size and batch
    equal eager torch's within the trunk tolerance, so caches and evaluation are unchanged."""
    report = default_encoder.trunk_runtime
    assert report["trunk_runtime"] == "onnxruntime", report
    assert report["max_abs_diff_vs_torch"] <= 1e-4 and report["threads"] == torch.get_num_threads()
    assert torch_runtime_encoder.trunk_runtime == {"trunk_runtime": "torch", "reason": "trunk_runtime='torch'"}
    imgs = [_scene("red", "square"), _scene("blue", "circle", size=(300, 200)), _scene("green", "stripes", (90, 200))]
    for batch_size in (1, 3):
        np.testing.assert_allclose(
            default_encoder.encode_image_trunk_features(imgs, batch_size=batch_size),
            torch_runtime_encoder.encode_image_trunk_features(imgs), rtol=TRUNK_RTOL, atol=TRUNK_ATOL)
    for size in (None, (200, 300), (448, 608)):  # 200 x 300 is no multiple of the stride 32
        got, want = default_encoder.image_feature_map(imgs[1], size), torch_runtime_encoder.image_feature_map(imgs[1], size)
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=TRUNK_RTOL, atol=TRUNK_ATOL)
    assert default_encoder.fingerprint() == torch_runtime_encoder.fingerprint()  # same numbers, same caches


def test_scene_resize_normalize_equals_torchvision():
    """The scene input is built in numpy (no torch thread pool on the query's hot path) with exactly the
    numbers of torchvision's Resize + ToTensor + Normalize."""
    from torchvision import transforms as T

    from scene_assets.encoders.default import ResizeNormalize
    from scene_assets.encoders.runtime import ToRGB

    for img in (_scene("red", "square", size=(300, 200)), _scene("blue", "circle", (97, 211)).convert("RGBA"),
                _scene("green", "stripes", (640, 480)).convert("L")):
        for size in ((224, 224), (160, 256), (448, 608)):
            want = T.Compose([ToRGB(), T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.ToTensor(),
                              T.Normalize(mean=DEFAULT_PREPROCESSING["mean"], std=DEFAULT_PREPROCESSING["std"])])(img)
            got = ResizeNormalize(size, DEFAULT_PREPROCESSING["mean"], DEFAULT_PREPROCESSING["std"])(img)
            assert got.dtype == want.dtype and got.shape == want.shape == (3, *size)
            assert torch.equal(got, want), (img.mode, size)


def test_trunk_runtime_without_onnxruntime_falls_back_or_refuses(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    auto = build_encoder(device="cpu", seed=7)
    assert auto.trunk_runtime["trunk_runtime"] == "torch"
    assert "onnxruntime" in auto.trunk_runtime["reason"] and "pip install" in auto.trunk_runtime["reason"]
    assert auto.encode_image_trunk_features([_scene("red", "square")]).shape == (1, 1280)
    forced = build_encoder(EncoderSpec(kind="default", device="cpu", options=DefaultOptions(seed=7, trunk_runtime="onnxruntime")))
    with pytest.raises(EncoderLoadError, match="trunk_runtime='onnxruntime' is not usable here"):
        forced.model  # noqa: B018
    with pytest.raises(ValueError, match="trunk_runtime must be one of"):
        build_encoder(EncoderSpec(kind="default", device="cpu", options=DefaultOptions(trunk_runtime="tensorrt")))


def test_dataloader_workers_preprocess(default_encoder):
    """Images decoded/preprocessed in worker processes give the same embeddings."""
    import pickle

    from torch.utils.data import DataLoader

    imgs = [_scene(c, s) for c, s in [("red", "square"), ("blue", "circle"), ("green", "triangle")]]
    for enc in (default_encoder, FakeEncoder(8)):
        tf = pickle.loads(pickle.dumps(enc.image_transform))  # must survive spawn-based workers
        loader = DataLoader(imgs, batch_size=2, num_workers=1, collate_fn=_Collate(tf))
        got = np.concatenate([enc.encode_image_tensors(b) for b in loader])
        np.testing.assert_allclose(got, enc.encode_images(imgs), atol=1e-5)


def test_default_text_tower_equals_sentence_transformers(default_encoder):
    st = build_encoder(EncoderSpec(kind="sentence_transformers", device="cpu"))
    texts = ["a grey fabric sofa", "Scandinavian oak dining table with four chairs", "lamp"]
    got = st.encode_texts(texts)
    assert got.shape == (3, 384) and got.dtype == np.float32 and st.dim == 384
    np.testing.assert_allclose(_unit(got), 1.0, atol=1e-5)
    np.testing.assert_allclose(default_encoder.encode_texts(texts), got, atol=1e-5)
    # semantics sanity: sofa ~ couch
    a, b, c = st.encode_texts(["a comfy sofa", "a cosy couch", "a stainless steel fork"])
    assert a @ b > a @ c
    with pytest.raises(TextOnlyEncoderError, match="text-only"):
        st.encode_images([_scene("red", "square")])
    assert len(st.fingerprint()) == 16


# ------------------------------------------------------------------------------ alignment


def _synthetic_pairs(n=32, d_in=1280, d_out=384, seed=0):
    rng = np.random.default_rng(seed)
    img = np.maximum(rng.standard_normal((n, d_in)), 0).astype(np.float32)
    mix = rng.standard_normal((d_in, d_out)).astype(np.float32) / np.sqrt(d_in)
    txt = img @ mix + 0.05 * rng.standard_normal((n, d_out)).astype(np.float32)
    return img, txt / np.linalg.norm(txt, axis=1, keepdims=True)


def test_alignment_lowers_infonce_and_is_deterministic():
    img, txt = _synthetic_pairs()
    kw = dict(epochs=30, lr=2e-3, batch_size=16, seed=7, num_threads=1)
    r1 = train_alignment(img, txt, **kw)
    assert isinstance(r1, AlignmentResult)
    assert len(r1.loss_curve) == 31 and len(r1.train_loss_curve) == 30
    assert r1.final_loss < r1.initial_loss - 1.0, r1.loss_curve
    assert r1.final_loss < 0.5 * r1.initial_loss
    r2 = train_alignment(img, txt, **kw)
    assert r1.loss_curve == r2.loss_curve
    for k in r1.state_dict:
        assert torch.equal(r1.state_dict[k], r2.state_dict[k])
    assert r1.sha256() == r2.sha256()
    r3 = train_alignment(img, txt, **{**kw, "seed": 8})
    assert r3.sha256() != r1.sha256()

    lin = train_alignment(img, txt, epochs=30, lr=5e-3, batch_size=16, seed=0, head="linear", num_threads=1)
    assert lin.head_config.kind == "linear" and set(lin.state_dict) == {"net.0.weight", "net.0.bias"}
    assert lin.final_loss < lin.initial_loss - 1.0
    with pytest.raises(ValueError):
        train_alignment(img, txt[:5], epochs=1)


def test_projection_changes_fingerprint(default_encoder, tmp_path):
    enc = build_encoder(EncoderSpec(device="cpu"))
    base_fp = enc.fingerprint()
    assert enc.fingerprint_info()["projection"] == "untrained"
    img, txt = _synthetic_pairs(n=16)
    res = train_alignment(img, txt, epochs=2, batch_size=8, seed=0, num_threads=1)
    path = save_projection(res, tmp_path / "head.pt")
    cfg, sd = load_projection_artifact(path)
    assert cfg == res.head_config and state_dict_sha256(sd) == res.sha256()

    assert not enc.image_text_aligned
    enc.load_projection(path)
    assert enc.projection_trained and enc.image_text_aligned
    info = enc.fingerprint_info()
    assert info["projection"] == "trained" and info["projection_head"]["sha256"] == res.sha256()
    trained_fp = enc.fingerprint()
    assert trained_fp != base_fp
    assert enc.trunk_fingerprint() == default_encoder.trunk_fingerprint()
    assert enc.text_fingerprint() == default_encoder.text_fingerprint()
    assert len({trained_fp, enc.trunk_fingerprint(), enc.text_fingerprint()}) == 3
    # same head from a different source -> same fingerprint
    assert build_encoder(EncoderSpec(device="cpu")).load_projection(res).fingerprint() == trained_fp
    assert build_encoder(EncoderSpec(device="cpu")).load_projection(res.state_dict).fingerprint() == trained_fp
    spec_enc = build_encoder(device="cpu", projection_path=str(path))
    assert spec_enc.fingerprint() == trained_fp
    # a different head -> different fingerprint
    other = train_alignment(img, txt, epochs=2, batch_size=8, seed=1, num_threads=1)
    assert build_encoder(EncoderSpec(device="cpu")).load_projection(other).fingerprint() != trained_fp

    # loading into an already-loaded encoder swaps the head in place
    probe = [_scene("yellow", "triangle")]
    before = default_encoder.encode_images(probe)
    try:
        default_encoder.load_projection(path)
        after = default_encoder.encode_images(probe)
        assert not np.allclose(before, after)
        np.testing.assert_allclose(_unit(after), 1.0, atol=1e-5)
        np.testing.assert_allclose(spec_enc.encode_images(probe), after, atol=1e-5)
    finally:
        default_encoder.reset_projection()
    np.testing.assert_allclose(default_encoder.encode_images(probe), before, atol=1e-6)
    assert default_encoder.fingerprint() == base_fp
    with pytest.raises(FileNotFoundError):
        enc.load_projection(tmp_path / "missing.pt")


def test_alignment_on_real_trunk_features_improves_retrieval(default_encoder):
    pairs = [(c, s) for c in COLORS for s in SHAPES]  # 16 distinct scenes
    imgs = [_scene(c, s) for c, s in pairs]
    texts = [f"a {c} {s}" for c, s in pairs]
    feats = default_encoder.encode_image_trunk_features(imgs)
    temb = default_encoder.encode_texts(texts)
    res = train_alignment(feats, temb, epochs=60, lr=2e-3, batch_size=16, seed=0, num_threads=1)
    assert res.final_loss < res.initial_loss - 1.0

    enc = build_encoder(EncoderSpec(device="cpu")).load_projection(res)
    sims = enc.project_trunk_features(feats) @ temb.T
    top1 = float((sims.argmax(axis=1) == np.arange(len(pairs))).mean())
    base = float(((default_encoder.project_trunk_features(feats) @ temb.T).argmax(1) == np.arange(16)).mean())
    assert top1 >= 0.9 and top1 > base


# ------------------------------------------------------------------------------ open_clip


TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def test_open_clip_checkpoint_roundtrip(tmp_path):
    cfg_path = tmp_path / "scene-tiny-clip.json"
    cfg_path.write_text(json.dumps(TINY_CFG))
    common = dict(kind="open_clip", model_name="scene-tiny-clip", model_config_path=str(cfg_path),
                  device="cpu", batch_size=2)
    rand = build_encoder(**common, pretrained=None, seed=3)
    assert rand.dim == 32
    imgs = [_scene("red", "square"), _scene("blue", "circle"), _scene("green", "stripes")]
    texts = ["a red square", "a blue circle", "green stripes"]
    i0, t0 = rand.encode_images(imgs), rand.encode_texts(texts)
    assert i0.shape == (3, 32) and t0.shape == (3, 32)
    np.testing.assert_allclose(_unit(i0), 1.0, atol=1e-5)

    ckpt = tmp_path / "tiny.pt"
    torch.save(rand.model.state_dict(), ckpt)
    loaded = build_encoder(**common, checkpoint_path=str(ckpt), seed=99)
    np.testing.assert_array_equal(loaded.encode_images(imgs), i0)
    np.testing.assert_array_equal(loaded.encode_texts(texts), t0)
    # `pretrained=<file>` works like checkpoint_path
    via_pretrained = build_encoder(**common, pretrained=str(ckpt))
    np.testing.assert_array_equal(via_pretrained.encode_texts(texts), t0)

    info = loaded.fingerprint_info()
    assert info["weights"]["file"] == "tiny.pt" and info["embed_dim"] == 32
    assert info["preprocessing"]["size"] == [64, 64]
    assert loaded.fingerprint() == via_pretrained.fingerprint()
    other = build_encoder(**common, seed=4)
    assert not np.allclose(other.encode_texts(texts), t0)

    with pytest.raises(EncoderLoadError, match="does not exist"):
        build_encoder(**common, checkpoint_path=str(tmp_path / "nope.pt")).encode_texts(["x"])
    with pytest.raises(EncoderLoadError, match="local checkpoint path"):
        build_encoder(kind="open_clip", model_name="ViT-B-32", pretrained="no-such-tag").encode_texts(["x"])
    with pytest.raises(EncoderLoadError, match="unknown open_clip model"):
        build_encoder(kind="open_clip", model_name="ViT-Q-99").encode_texts(["x"])


def test_named_open_clip_weights_offline_say_what_to_do(monkeypatch):
    """A pretrained tag that needs the hub, on a machine without it: one error that says how to get
    the weights here (download elsewhere and copy the cache, or pass the checkpoint file)."""
    from scene_assets.encoders import EncoderLoadError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder = build_encoder(kind="open_clip", model_name="ViT-B-32", pretrained="laion2b_s34b_b79k", device="cpu")
    with pytest.raises(EncoderLoadError) as raised:
        encoder.encode_texts(["a chair"])
    message = str(raised.value)
    assert "ViT-B-32" in message and "laion2b_s34b_b79k" in message
    assert "If this machine is offline" in message and "checkpoint" in message


# ------------------------------------------------------------------------------ golden vectors


# Tolerances, per kind of output (measured: the same machine with 1 vs 2 torch threads moved the
# default encoder's unit vectors by <= 3e-7, its pooled trunk features by <= 5e-6 and its feature map
# by <= 1.2e-5; other CPUs' SIMD widths and oneDNN/MKL kernels reorder float32 sums similarly).
# A behaviour change (another resize, crop, normalisation, weight, head or pooling) moves them by
# 1e-2 or more, so these bounds separate the two by three orders of magnitude.
UNIT_VECTOR_ATOL = 1e-5  # L2-normalised outputs of the torch models
TRUNK_RTOL = TRUNK_ATOL = 1e-4  # unnormalised CNN activations (values up to ~10)
# The fake encoder is sha256 + numpy's PCG64 + a PIL uint8 resize: bit-identical everywhere.


@pytest.fixture(scope="module")
def golden_vectors() -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory() as workdir:
        return golden.compute(Path(workdir))


def test_golden_reference_vectors(golden_vectors):
    """Every kind reproduces the vectors stored by the code before the encoders became a package."""
    reference = np.load(golden.REFERENCE_FILE)
    assert sorted(reference.files) == sorted(golden_vectors)
    for name, got in golden_vectors.items():
        want = reference[name]
        assert got.shape == want.shape and got.dtype == np.float32, name
        if name.startswith("fake/"):
            np.testing.assert_array_equal(got, want, err_msg=name)
        elif name in ("default/trunk_features", "default/feature_map"):
            np.testing.assert_allclose(got, want, rtol=TRUNK_RTOL, atol=TRUNK_ATOL, err_msg=name)
        else:
            np.testing.assert_allclose(got, want, rtol=0, atol=UNIT_VECTOR_ATOL, err_msg=name)
    # the inputs are not degenerate: distinct texts and images give distinct vectors
    for name in ("default/images", "default/texts", "open_clip/texts", "sentence_transformers/texts"):
        vectors = reference[name]
        assert len({tuple(np.round(v, 4)) for v in vectors}) == len(vectors), name
