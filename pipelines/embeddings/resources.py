"""The encoder as a resource: configured in the launchpad or by environment, loaded lazily."""

from __future__ import annotations

import functools

import dagster as dg
from pydantic import Field

from scene_assets.encoders import Encoder, EncoderSpec, build_encoder


@functools.lru_cache(maxsize=4)
def _cached_encoder(spec: EncoderSpec) -> Encoder:
    # A per-process cache of loaded weights: steps in one process (in-process runs, the API server)
    # share them; other processes simply load their own copy. It holds no pipeline state.
    return build_encoder(spec)


class EncoderResource(dg.ConfigurableResource):
    """Which encoder turns products and scenes into vectors."""

    kind: str = Field(
        default="default",
        description="default (offline EfficientNet-Lite0 + MiniLM, open_clip custom model), open_clip, "
        "sentence_transformers (text only) or fake (seeded vectors, for tests).",
    )
    model_name: str = Field(default="", description="open_clip model name, e.g. ViT-B-32 (kind=open_clip).")
    pretrained: str = Field(default="", description="open_clip pretrained tag (downloads from the hub) or a local checkpoint path.")
    device: str = Field(default="auto", description="auto (CUDA when present, fp16 there), cpu or cuda.")
    batch_size: int = Field(default=16, description="Images per forward pass.")
    decode_workers: int = Field(default=2, description="Threads decoding images while the model computes.")
    dim: int = Field(default=64, description="Vector size of the fake encoder (kind=fake).")
    commit_every: int = Field(
        default=256,
        description="Products encoded between commits of a shard's vector file: a run killed mid-way keeps "
        "everything committed and the next run encodes only the rest.",
    )

    def spec(self, projection_path: str | None = None) -> EncoderSpec:
        return EncoderSpec(
            kind=self.kind,
            model_name=self.model_name or None,
            pretrained=self.pretrained or None,
            device=self.device,
            batch_size=self.batch_size,
            dim=self.dim,
            projection_path=projection_path,
        )

    def encoder(self, projection_path: str | None = None) -> Encoder:
        return _cached_encoder(self.spec(projection_path))
