"""The encoder interfaces: :class:`Encoder` (texts and images into one normalised vector space) and
:class:`FeatureMapEncoder` (an image trunk with a conv feature map and a trainable projection head
onto that space). Callers choose code paths with ``isinstance(encoder, FeatureMapEncoder)``, never by
probing for methods."""

from __future__ import annotations

import abc
import contextlib
import threading
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import numpy as np

from .fingerprints import digest
from .runtime import chunks, resolve_device, resolve_precision

if TYPE_CHECKING:  # pragma: no cover
    import os

    import torch
    from PIL import Image

    from ..alignment import AlignmentResult


class Encoder(abc.ABC):
    """open_clip-shaped encoder.  All ``encode_*`` methods return float32 ``N x dim`` arrays with
    L2-normalised rows (an empty input gives a ``0 x dim`` array).

    A kind declares its name (``kind``), its frozen options dataclass (``options_type``) and how
    to build itself from those options (:meth:`from_options`); the registry does the rest.  Model
    weights load lazily, once, thread-safely: a kind implements :meth:`_load` and reads
    :attr:`model` (or calls :meth:`_ensure_loaded`) where it needs them."""

    kind: ClassVar[str] = "abstract"
    options_type: ClassVar[type]
    supports_images: ClassVar[bool] = True

    def __init__(self, *, device: str = "auto", precision: str = "auto",
                 batch_size: int = 32, text_batch_size: int | None = None) -> None:
        """The settings every kind shares: ``device`` ("auto" = CUDA when available, else CPU),
        ``precision`` ("auto" = fp16 autocast on CUDA, fp32 on CPU), ``batch_size`` (images),
        ``text_batch_size`` (defaults to ``batch_size``)."""
        self._device_request = device
        self._precision_request = precision
        self.batch_size = int(batch_size)
        self.text_batch_size = int(text_batch_size or batch_size)
        self._device: str | None = None
        self._lock = threading.RLock()
        self._model: Any = None

    @classmethod
    @abc.abstractmethod
    def from_options(cls, options: Any, **settings: Any) -> "Encoder":
        """The encoder of this kind for ``options`` (an ``options_type``) and the shared settings
        (the keyword arguments of ``Encoder.__init__``, which every kind's constructor passes on)."""

    # -- lazy loading -----------------------------------------------------------------------
    def _load(self) -> Any:
        """Build and return the model; runs once, under the lock.  Set companions the model needs
        (tokenizer, preprocessing) before returning: other threads see them once it is stored."""
        raise NotImplementedError(f"{type(self).__name__} has no model to load")

    def _ensure_loaded(self) -> None:
        if self._model is not None:
            return
        with self._lock:
            if self._model is None:
                self._model = self._load()

    @property
    def model(self):
        """The underlying model (loads on first access)."""
        self._ensure_loaded()
        return self._model

    @property
    def is_loaded(self) -> bool:
        return self._model is not None

    # -- device ---------------------------------------------------------------------------
    @property
    def device(self) -> str:
        if self._device is None:
            self._device = resolve_device(self._device_request)
        return self._device

    @property
    def precision(self) -> str:
        return resolve_precision(self._precision_request, self.device)

    def _autocast(self) -> contextlib.AbstractContextManager:
        import torch

        if self.precision == "fp16" and self.device.startswith("cuda"):
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    # -- required API ---------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Dimension of the joint embedding space."""

    @abc.abstractmethod
    def encode_texts(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """``N x dim`` float32, L2-normalised."""

    @abc.abstractmethod
    def preprocess_image(self, img: "Image.Image") -> "torch.Tensor":
        """PIL image -> ``C x H x W`` float tensor ready for :meth:`encode_image_tensors`.
        Pure CPU work (the default and fake encoders need no weights for it), so it can run in
        DataLoader workers; :attr:`image_transform` is the picklable form."""

    @abc.abstractmethod
    def encode_image_tensors(self, batch: "torch.Tensor") -> np.ndarray:
        """``B x C x H x W`` batch from :meth:`preprocess_image` -> ``B x dim`` float32, normalised."""

    @abc.abstractmethod
    def fingerprint_info(self) -> dict[str, Any]:
        """Everything that determines the embeddings (model, weight hashes, preprocessing,
        embed dim, library versions).  ``source_paths`` is informative only (not hashed)."""

    # -- provided -------------------------------------------------------------------------
    @property
    def image_text_aligned(self) -> bool:
        """Whether image and text vectors are meant to be compared with each other (False only
        while a feature-map encoder's projection head is untrained, i.e. random)."""
        return True

    @property
    def image_transform(self):
        """Picklable callable PIL -> tensor (same as :meth:`preprocess_image`)."""
        return self.preprocess_image

    def encode_images(self, images: Sequence["Image.Image"], batch_size: int | None = None) -> np.ndarray:
        """Preprocess + encode in batches of ``batch_size`` (default: the encoder's)."""
        import torch

        images = list(images)
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        bs = int(batch_size or self.batch_size)
        tf = self.image_transform
        outs = []
        for sl in chunks(len(images), bs):
            batch = torch.stack([tf(im) for im in images[sl]])
            outs.append(self.encode_image_tensors(batch))
        return np.concatenate(outs, axis=0)

    def runtime_description(self) -> str:
        """What runs the model here, for run metadata (does not load it)."""
        if not self.is_loaded:
            return "not loaded"
        return f"torch on {self.device}, {self.precision}"

    def fingerprint(self) -> str:
        """Short (16 hex chars) stable digest of :meth:`fingerprint_info`."""
        return digest(self.fingerprint_info())

    def text_fingerprint(self) -> str:
        """Digest of what determines :meth:`encode_texts` (key for text-vector caches).  Equal to
        :meth:`fingerprint` unless the text side is independent of parts of the model."""
        return self.fingerprint()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, device={self._device_request!r})"


class FeatureMapEncoder(Encoder):
    """An encoder whose image side is a frozen CNN trunk followed by a trainable projection head.

    The trunk gives a conv feature map (region vectors pool its cells) and pooled trunk features
    (cached per product, so retraining the head never re-runs the CNN); the head maps trunk
    features into the joint space shared with the texts."""

    @property
    @abc.abstractmethod
    def trunk_dim(self) -> int:
        """Channels of the feature map = dimension of pooled trunk features."""

    @abc.abstractmethod
    def trunk_fingerprint(self) -> str:
        """Digest of everything that determines the trunk features (key for trunk-feature caches)."""

    @abc.abstractmethod
    def encode_trunk_tensors(self, batch: "torch.Tensor") -> np.ndarray:
        """``B x C x H x W`` batch from :meth:`preprocess_image` -> ``B x trunk_dim`` pooled trunk
        features, float32, not normalised."""

    @abc.abstractmethod
    def encode_image_trunk_features(self, images: Sequence["Image.Image"],
                                    batch_size: int | None = None) -> np.ndarray:
        """``N x trunk_dim`` pooled trunk features of PIL images, float32, not normalised."""

    @abc.abstractmethod
    def project_trunk_features(self, features: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """``N x trunk_dim`` trunk features -> ``N x dim`` normalised joint vectors (current head)."""

    @abc.abstractmethod
    def image_feature_map(self, img: "Image.Image", size: int | tuple[int, int] | None = None) -> np.ndarray:
        """The trunk's last conv feature map, ``trunk_dim x H x W`` float32."""

    @abc.abstractmethod
    def load_projection(self, source: "str | os.PathLike | AlignmentResult | Any") -> "FeatureMapEncoder":
        """Install a trained projection head; changes the fingerprint."""

    @abc.abstractmethod
    def reset_projection(self) -> "FeatureMapEncoder":
        """Back to the untrained head."""

    @property
    @abc.abstractmethod
    def projection_trained(self) -> bool:
        """Whether a trained projection head is installed."""

    @property
    def image_text_aligned(self) -> bool:
        return self.projection_trained
