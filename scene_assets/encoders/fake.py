"""Kind ``"fake"``: deterministic hash-seeded vectors for fast tests (no model, no weights)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .base import Encoder
from .runtime import to_rgb

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image


@dataclass(frozen=True)
class FakeOptions:
    """Options of kind ``"fake"``."""

    dim: int = 64  # vector size
    seed: int = 0  # different seeds give unrelated vectors for the same input

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ValueError("EncoderSpec.dim must be >= 1")


class FakeEncoder(Encoder):
    """Deterministic, model-free encoder: each vector is seeded from sha256 of the text / the
    preprocessed image bytes (image resized to ``image_size`` squared, RGB, uint8).  Identical
    inputs give identical vectors on every machine; different inputs give ~orthogonal ones."""

    kind = "fake"
    options_type = FakeOptions

    def __init__(self, dim: int = 64, *, seed: int = 0, image_size: int = 32, batch_size: int = 32) -> None:
        super().__init__(device="cpu", precision="fp32", batch_size=batch_size)
        if dim < 1:
            raise ValueError("dim must be >= 1")
        self._dim = int(dim)
        self.seed = int(seed)
        self.image_size = int(image_size)

    @classmethod
    def from_options(cls, options: FakeOptions, **settings: Any) -> "FakeEncoder":
        """Always on the CPU in fp32: of the shared settings only ``batch_size`` applies."""
        return cls(options.dim, seed=options.seed, batch_size=settings["batch_size"])

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def device(self) -> str:
        return "cpu"

    def _vector(self, domain: str, payload: bytes) -> np.ndarray:
        h = hashlib.sha256(f"{self.seed}:{domain}:".encode() + payload).digest()
        rng = np.random.default_rng(int.from_bytes(h[:16], "little"))
        v = rng.standard_normal(self._dim)
        return (v / np.linalg.norm(v)).astype(np.float32)

    def encode_texts(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return np.stack([self._vector("text", str(t).encode("utf-8")) for t in texts])

    @property
    def image_transform(self):
        return _FakeImageTransform(self.image_size)

    def preprocess_image(self, img: "Image.Image") -> "torch.Tensor":
        return _FakeImageTransform(self.image_size)(img)

    def encode_image_tensors(self, batch: "torch.Tensor") -> np.ndarray:
        import torch

        if batch.ndim == 3:
            batch = batch.unsqueeze(0)
        u8 = (batch.detach().cpu().float() * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()
        if u8.shape[0] == 0:
            return np.zeros((0, self._dim), dtype=np.float32)
        return np.stack([self._vector("image", row.tobytes() + str(row.shape).encode()) for row in u8])

    def fingerprint_info(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model_name": "fake-sha256-pcg64-v1",
            "embed_dim": self._dim,
            "seed": self.seed,
            "weights_sha256": None,
            "preprocessing": {"resize": self.image_size, "interpolation": "bilinear", "mode": "RGB"},
            "library_versions": {"numpy": np.__version__},
        }


class _FakeImageTransform:
    """Picklable: RGB, bilinear resize to ``size`` squared, float tensor in [0, 1]."""

    def __init__(self, size: int) -> None:
        self.size = int(size)

    def __call__(self, img: "Image.Image") -> "torch.Tensor":
        import torch
        from PIL import Image as PILImage

        im = to_rgb(img).resize((self.size, self.size), PILImage.Resampling.BILINEAR)
        arr = np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()
        return torch.from_numpy(arr).float().div_(255.0)
