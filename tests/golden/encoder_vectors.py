"""Fixed inputs of the encoder golden test and the script that stores their reference vectors.

The reference file was written from the code before the encoders became a package (a pristine
checkout first on PYTHONPATH), so tests/test_encoders.py proves the move kept every kind's numbers:

    PYTHONPATH=/path/to/pristine/checkout python tests/golden/encoder_vectors.py

Only ``build_encoder(**fields)`` is used, the call both versions share.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REFERENCE_FILE = Path(__file__).with_name("encoder_vectors.npz")

TEXTS = ("a grey fabric sofa", "Scandinavian oak dining table with four chairs", "", "Lampe aus Messing – 40 cm")

# a tiny open_clip ViT registered from a JSON file: randomly initialised from a seed, no download
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
TINY_CLIP_NAME = "golden-tiny-clip"


def images() -> list[Image.Image]:
    """Two synthetic photos drawn with numpy only: a colour gradient with a red block (landscape)
    and a blue/yellow checkerboard with a diagonal band (portrait)."""
    y, x = np.mgrid[0:150, 0:200]
    gradient = np.stack([x * 255 // 199, y * 255 // 149, (x + y) * 255 // 348], axis=-1).astype(np.uint8)
    gradient[40:110, 60:140] = (200, 40, 40)
    y, x = np.mgrid[0:240, 0:120]
    board = np.where((((x // 20) + (y // 20)) % 2)[..., None] == 0, (30, 60, 220), (240, 220, 20)).astype(np.uint8)
    board[np.abs(x * 2 - y) < 12] = (20, 20, 20)
    return [Image.fromarray(gradient, "RGB"), Image.fromarray(board, "RGB")]


def compute(workdir: Path) -> dict[str, np.ndarray]:
    """Every stored vector, computed by the code on the path (CPU, fp32)."""
    from scene_assets.encoders import build_encoder

    imgs, texts = images(), list(TEXTS)
    out: dict[str, np.ndarray] = {}

    default = build_encoder(kind="default", device="cpu", precision="fp32")
    out["default/images"] = default.encode_images(imgs)
    out["default/texts"] = default.encode_texts(texts)
    out["default/trunk_features"] = default.encode_image_trunk_features(imgs)
    # the first 64 channels of the region pass's feature map (whole image resized, no crop)
    out["default/feature_map"] = default.image_feature_map(imgs[0], size=(160, 224))[:64]

    minilm = build_encoder(kind="sentence_transformers", device="cpu", precision="fp32")
    out["sentence_transformers/texts"] = minilm.encode_texts(texts)

    config_path = Path(workdir) / f"{TINY_CLIP_NAME}.json"
    config_path.write_text(json.dumps(TINY_CLIP_CONFIG))
    clip = build_encoder(kind="open_clip", model_name=TINY_CLIP_NAME, model_config_path=str(config_path),
                         pretrained=None, seed=3, device="cpu", precision="fp32")
    out["open_clip/images"] = clip.encode_images(imgs)
    out["open_clip/texts"] = clip.encode_texts(texts)

    fake = build_encoder(kind="fake", dim=16, seed=5)
    out["fake/images"] = fake.encode_images(imgs)
    out["fake/texts"] = fake.encode_texts(texts)
    return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}


def main() -> None:
    import scene_assets

    print(f"computing reference vectors with {scene_assets.__file__}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as workdir:
        vectors = compute(Path(workdir))
    np.savez_compressed(REFERENCE_FILE, **vectors)
    for name, array in vectors.items():
        print(f"{name}: {array.shape}", file=sys.stderr)


if __name__ == "__main__":
    main()
