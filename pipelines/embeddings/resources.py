"""The encoder as a resource: configured in the launchpad or by environment, loaded lazily.

Its config is flat: ``kind``, the settings every kind shares, and each kind's options side by side
(one field may serve several kinds, e.g. ``seed``); only the chosen kind's options are read, so
switching kinds is one edit. The options mirror the per-kind option classes of
``scene_assets.encoders`` (``DefaultOptions``, ``OpenClipOptions``, ``SentenceTransformerOptions``,
``FakeOptions``); the trained projection head of the default kind comes from the
``image_text_alignment`` asset, not from config."""

from __future__ import annotations

import functools

import dagster as dg
from pydantic import Field

from scene_assets.encoders import ENCODER_KINDS, Encoder, EncoderSpec, build_encoder, option_names


@functools.lru_cache(maxsize=4)
def _cached_encoder(spec: EncoderSpec) -> Encoder:
    # A per-process cache of loaded weights: steps in one process (in-process runs, the API server)
    # share them; other processes simply load their own copy. It holds no pipeline state.
    return build_encoder(spec)


class EncoderResource(dg.ConfigurableResource):
    """Which encoder turns products and scenes into vectors."""

    kind: str = Field(
        default="default",
        description=f"One of {', '.join(ENCODER_KINDS)}: default (offline EfficientNet-Lite0 + MiniLM, open_clip "
        "custom model), open_clip (any open_clip model), sentence_transformers (text only) or fake (seeded "
        "vectors, for tests). Only this kind's options below are read.",
    )
    # shared by every kind
    device: str = Field(default="auto", description="auto (CUDA when present, fp16 there), cpu or cuda.")
    precision: str = Field(default="auto", description="auto (fp16 autocast on CUDA, fp32 on CPU), fp32 or fp16.")
    batch_size: int = Field(default=16, description="Images per forward pass.")
    # options of kind default
    trunk_weights_path: str = Field(
        default="", description="kind=default: EfficientNet-Lite0 .pth file (empty: the packaged weights)."
    )
    text_model_path: str = Field(
        default="",
        description="kind=default or sentence_transformers: local MiniLM / sentence-transformers model folder "
        "(empty: the packaged all-MiniLM-L6-v2).",
    )
    trunk_runtime: str = Field(
        default="auto",
        description="kind=default: what runs the CNN on CPU: auto (ONNX Runtime when installed, ~2x faster here, "
        "same features; else torch), torch or onnxruntime. CUDA always runs torch.",
    )
    seed: int = Field(
        default=0,
        description="kind=default: seed of the untrained projection head; open_clip: random init without weights; "
        "fake: seed of the vectors.",
    )
    # options of kind open_clip
    model_name: str = Field(
        default="",
        description="kind=open_clip: model name, e.g. ViT-B-32; sentence_transformers: a hub model name.",
    )
    pretrained: str = Field(
        default="", description="kind=open_clip: pretrained tag (downloads from the hub) or a local checkpoint path."
    )
    checkpoint_path: str = Field(
        default="",
        description="kind=open_clip: local weights file; together with a pretrained tag, the tag's preprocessing applies.",
    )
    model_config_path: str = Field(
        default="", description="kind=open_clip: JSON model config to register with open_clip (own architectures)."
    )
    cache_dir: str = Field(default="", description="kind=open_clip: where downloaded weights are cached.")
    # options of kind fake
    dim: int = Field(default=64, description="kind=fake: vector size.")
    # how the pipeline runs the encoder
    decode_workers: int = Field(default=2, description="Threads decoding images while the model computes.")
    commit_every: int = Field(
        default=256,
        description="Products encoded between commits of a shard's vector file: a run killed mid-way keeps "
        "everything committed and the next run encodes only the rest.",
    )

    def spec(self, projection_path: str | None = None) -> EncoderSpec:
        """The encoder spec of this config; ``projection_path``: a trained head (kind default only)."""
        values: dict = {"kind": self.kind, "device": self.device, "precision": self.precision,
                        "batch_size": self.batch_size}
        for name in option_names(self.kind):
            if name != "projection_path":
                value = getattr(self, name)
                values[name] = None if value == "" else value
        values["projection_path"] = projection_path
        return EncoderSpec.from_dict(values)

    def encoder(self, projection_path: str | None = None) -> Encoder:
        return _cached_encoder(self.spec(projection_path))
