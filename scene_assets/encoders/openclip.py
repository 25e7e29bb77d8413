"""Kind ``"open_clip"``: any open_clip architecture by name plus a ``pretrained`` tag (downloads
where there is internet) or a local checkpoint file; with no weights, random from a seed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .base import Encoder
from .errors import EncoderLoadError
from .fingerprints import file_sha256, library_versions
from .runtime import ToRGB, chunks, normalised_numpy, quiet_transformers

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image


@dataclass(frozen=True)
class OpenClipOptions:
    """Options of kind ``"open_clip"``."""

    model_name: str = ""  # open_clip architecture, e.g. "ViT-B-32" (required; see open_clip.list_models())
    pretrained: str | None = None  # pretrained tag (from the hub) or a local weights file
    checkpoint_path: str | None = None  # local weights file; with a tag, the tag's preprocessing applies
    model_config_path: str | None = None  # extra JSON model config registered with open_clip
    cache_dir: str | None = None  # where open_clip caches downloaded weights
    seed: int = 0  # random initialisation when there are no weights

    def __post_init__(self) -> None:
        if not self.model_name:
            raise ValueError(
                "EncoderSpec(kind='open_clip') needs model_name (e.g. 'ViT-B-32'); "
                "see open_clip.list_models()"
            )


class OpenClipEncoder(Encoder):
    """Any open_clip architecture.  ``pretrained`` is a tag (downloaded from the hub where there
    is internet) or a local file; ``checkpoint_path`` is a local file (when given together with a
    tag, the tag's preprocessing config is used and the weights come from the file).  With no
    weights the model is randomly initialised from ``seed`` (useful for tests)."""

    kind = "open_clip"
    options_type = OpenClipOptions

    def __init__(
        self,
        model_name: str,
        *,
        pretrained: str | None = None,
        checkpoint_path: str | os.PathLike | None = None,
        model_config_path: str | os.PathLike | None = None,
        cache_dir: str | None = None,
        seed: int = 0,
        **settings: Any,
    ) -> None:
        super().__init__(**settings)
        self.model_name = model_name
        self.pretrained = pretrained
        self.checkpoint_path = str(checkpoint_path) if checkpoint_path else None
        self.model_config_path = str(model_config_path) if model_config_path else None
        self.cache_dir = cache_dir
        self.seed = int(seed)
        self._tokenizer = None
        self._preprocess = None
        self._transform = None
        self._dim: int | None = None
        self._weights_info: dict[str, Any] | None = None

    @classmethod
    def from_options(cls, options: OpenClipOptions, **settings: Any) -> "OpenClipEncoder":
        return cls(options.model_name, pretrained=options.pretrained, checkpoint_path=options.checkpoint_path,
                   model_config_path=options.model_config_path, cache_dir=options.cache_dir, seed=options.seed,
                   **settings)

    def _weights_source(self) -> tuple[str | None, str | None]:
        """(weights file or tag passed to open_clip, tag whose preprocess cfg to apply)."""
        tag = self.pretrained if self.pretrained and not os.path.isfile(self.pretrained) else None
        if self.checkpoint_path:
            return self.checkpoint_path, tag
        if self.pretrained:
            return self.pretrained, tag
        return None, None

    def _load(self):
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
                "build_encoder(kind='open_clip', model_name=..., model_config_path=...)."
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
            with torch.random.fork_rng(devices=[]), quiet_transformers():
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
                    f"build_encoder(kind='open_clip', model_name='{name}', pretrained='{tag}', "
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
        return model

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

            self._transform = T.Compose([ToRGB(), self._preprocess])
        return self._transform

    def preprocess_image(self, img: "Image.Image") -> "torch.Tensor":
        return self.image_transform(img)

    def encode_image_tensors(self, batch: "torch.Tensor") -> np.ndarray:
        import torch

        self._ensure_loaded()
        if batch.ndim == 3:
            batch = batch.unsqueeze(0)
        with torch.inference_mode(), self._autocast():
            return normalised_numpy(self._model.encode_image(batch.to(self.device)))

    def encode_texts(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        import torch

        texts = [str(t) for t in texts]
        self._ensure_loaded()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        bs = int(batch_size or self.text_batch_size)
        outs = []
        for sl in chunks(len(texts), bs):
            tokens = self._tokenizer(texts[sl])
            with torch.inference_mode(), self._autocast():
                outs.append(normalised_numpy(self._model.encode_text(tokens.to(self.device))))
        return np.concatenate(outs)

    def _weights_fingerprint(self) -> dict[str, Any]:
        if self._weights_info is not None:
            return self._weights_info
        import open_clip

        from ..alignment import state_dict_sha256

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
            info["sha256"] = file_sha256(path)
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
