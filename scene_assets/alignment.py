"""Image-projection alignment for the default (offline) encoder.

The default encoder pairs a frozen EfficientNet-Lite0 image trunk (1280-d pooled
features) with a frozen all-MiniLM-L6-v2 text tower (384-d).  The only trainable
piece is the image projection head (1280 -> 384) plus a temperature, trained with
a symmetric InfoNCE (CLIP) loss on *precomputed* features, so training is fast
and never re-runs the CNN or the text transformer (LiT-style "locked" towers).

Plain PyTorch/NumPy; no Dagster imports.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HeadKind = Literal["mlp", "linear"]

PROJECTION_FORMAT = "scene-matcher/projection-head/v1"

__all__ = [
    "AlignmentResult",
    "HeadConfig",
    "ProjectionHead",
    "build_head",
    "info_nce_loss",
    "load_projection_artifact",
    "save_projection",
    "state_dict_sha256",
    "train_alignment",
]


@dataclass(frozen=True)
class HeadConfig:
    """Architecture of a projection head (enough to rebuild it before loading weights)."""

    kind: HeadKind = "mlp"
    in_dim: int = 1280
    out_dim: int = 384
    hidden_dim: int = 768
    dropout: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "HeadConfig":
        known = {k: d[k] for k in ("kind", "in_dim", "out_dim", "hidden_dim", "dropout") if k in d}
        return cls(**known)


class ProjectionHead(nn.Module):
    """1280 -> 384 projection.  ``mlp``: Linear -> GELU -> Dropout -> Linear; ``linear``: one Linear.

    The output is *not* normalised; callers L2-normalise.
    """

    def __init__(self, config: HeadConfig):
        super().__init__()
        self.config = config
        if config.kind == "mlp":
            self.net = nn.Sequential(
                nn.Linear(config.in_dim, config.hidden_dim),
                nn.GELU(),
                nn.Dropout(config.dropout),
                nn.Linear(config.hidden_dim, config.out_dim),
            )
        elif config.kind == "linear":
            self.net = nn.Sequential(nn.Linear(config.in_dim, config.out_dim))
        else:
            raise ValueError(f"unknown projection head kind {config.kind!r}; use 'mlp' or 'linear'")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_head(config: HeadConfig, seed: int | None = None) -> ProjectionHead:
    """Create a head; with ``seed`` its initial weights are reproducible and independent of
    the global torch RNG state."""
    if seed is None:
        return ProjectionHead(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ProjectionHead(config)


def state_dict_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over (sorted key, dtype, shape, raw bytes) of each tensor.

    Independent of how the weights were stored (file vs. in-memory dict)."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key]
        if not isinstance(t, torch.Tensor):
            continue
        t = t.detach().to("cpu").contiguous()
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def info_nce_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP loss).  Inputs must already be L2-normalised; row i of each
    side is a positive pair, every other row in the batch is a negative."""
    logits = logit_scale.exp() * image_emb @ text_emb.t()
    labels = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


@dataclass
class AlignmentResult:
    """Output of :func:`train_alignment`.

    ``loss_curve[0]`` is the InfoNCE loss *before* training and ``loss_curve[i]`` the loss
    after epoch ``i``; both evaluated without dropout on fixed, unshuffled batches of
    ``batch_size`` (so the values are comparable across epochs).  ``train_loss_curve``
    holds the mean minibatch training loss of each epoch (with dropout / shuffling).
    """

    state_dict: dict[str, torch.Tensor]
    loss_curve: list[float]
    head_config: HeadConfig
    train_loss_curve: list[float] = field(default_factory=list)
    temperature: float = 0.07
    logit_scale: float = math.log(1 / 0.07)
    epochs: int = 0
    lr: float = 0.0
    batch_size: int = 0
    seed: int = 0
    n_pairs: int = 0

    @property
    def initial_loss(self) -> float:
        return self.loss_curve[0]

    @property
    def final_loss(self) -> float:
        return self.loss_curve[-1]

    def sha256(self) -> str:
        return state_dict_sha256(self.state_dict)

    def to_artifact(self) -> dict[str, Any]:
        return {
            "format": PROJECTION_FORMAT,
            "head_config": self.head_config.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict.items()},
            "metadata": {
                "loss_curve": list(self.loss_curve),
                "train_loss_curve": list(self.train_loss_curve),
                "temperature": self.temperature,
                "logit_scale": self.logit_scale,
                "epochs": self.epochs,
                "lr": self.lr,
                "batch_size": self.batch_size,
                "seed": self.seed,
                "n_pairs": self.n_pairs,
            },
        }


def save_projection(result: AlignmentResult, path: str | os.PathLike) -> Path:
    """Write a trained head (config + weights + training metadata) with ``torch.save``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(result.to_artifact(), path)
    return path


def _infer_head_config(state_dict: Mapping[str, torch.Tensor]) -> HeadConfig:
    """Rebuild the config from a bare ProjectionHead state_dict."""
    if "net.3.weight" in state_dict:
        w0, w3 = state_dict["net.0.weight"], state_dict["net.3.weight"]
        return HeadConfig(kind="mlp", in_dim=w0.shape[1], hidden_dim=w0.shape[0], out_dim=w3.shape[0])
    if "net.0.weight" in state_dict:
        w0 = state_dict["net.0.weight"]
        return HeadConfig(kind="linear", in_dim=w0.shape[1], out_dim=w0.shape[0])
    raise ValueError(
        "not a projection-head state_dict (expected keys 'net.0.weight' [and 'net.3.weight']); "
        f"got keys {sorted(state_dict)[:6]}... Save heads with scene_assets.alignment.save_projection()."
    )


def load_projection_artifact(
    source: "str | os.PathLike | AlignmentResult | Mapping[str, Any]",
) -> tuple[HeadConfig, dict[str, torch.Tensor]]:
    """Accepts a path written by :func:`save_projection`, an :class:`AlignmentResult`, an
    artifact dict, or a bare ``ProjectionHead`` state_dict.  Returns (config, state_dict)."""
    if isinstance(source, AlignmentResult):
        return source.head_config, dict(source.state_dict)
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if not p.is_file():
            raise FileNotFoundError(
                f"projection head file {p} does not exist; train one with "
                "scene_assets.alignment.train_alignment() and save it with save_projection()."
            )
        source = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(source, Mapping):
        raise TypeError(f"cannot load a projection head from {type(source).__name__}")
    if "state_dict" in source and isinstance(source["state_dict"], Mapping):
        sd = dict(source["state_dict"])
        cfg = (
            HeadConfig.from_dict(source["head_config"])
            if "head_config" in source
            else _infer_head_config(sd)
        )
        return cfg, sd
    sd = dict(source)
    return _infer_head_config(sd), sd


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    if not n:
        yield
        return
    prev = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def _resolve_train_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def train_alignment(
    image_features: np.ndarray,
    text_embeddings: np.ndarray,
    *,
    epochs: int = 20,
    lr: float = 1e-3,
    batch_size: int = 256,
    seed: int = 0,
    head: HeadKind = "mlp",
    hidden_dim: int = 768,
    dropout: float = 0.1,
    weight_decay: float = 1e-4,
    init_temperature: float = 0.07,
    learn_temperature: bool = True,
    max_logit_scale: float = 100.0,
    device: str = "cpu",
    num_threads: int | None = None,
) -> AlignmentResult:
    """Train the image projection head so that projected trunk features align with the
    (frozen) text embeddings of their paired texts.

    Args:
        image_features: ``N x D_in`` pooled trunk features (e.g. from
            ``DefaultEncoder.encode_image_trunk_features``), float.
        text_embeddings: ``N x D_out`` text embeddings of the paired texts (re-normalised here).
        epochs / lr / batch_size / weight_decay: AdamW settings; ``batch_size`` is also the
            number of in-batch negatives + 1 (clipped to N).
        seed: makes init, shuffling and dropout deterministic (same machine / thread count).
        head: ``"mlp"`` (Linear-GELU-Dropout-Linear, ``hidden_dim``) or ``"linear"``.
        init_temperature / learn_temperature: CLIP-style learnable temperature (logit scale
            ``log(1/T)``, clamped to ``log(max_logit_scale)``).
        num_threads: temporarily set torch's intra-op CPU threads (``None``: leave as is).  Small
            heads / batches train much faster with 1 thread on a busy machine.

    Note: duplicated texts (e.g. many images captioned with the same category) are treated as
    negatives of each other, as in CLIP; de-duplicate pairs per batch upstream if that matters.
    """
    img = np.asarray(image_features, dtype=np.float32)
    txt = np.asarray(text_embeddings, dtype=np.float32)
    if img.ndim != 2 or txt.ndim != 2:
        raise ValueError(f"expected 2-D arrays, got image {img.shape} and text {txt.shape}")
    if img.shape[0] != txt.shape[0]:
        raise ValueError(f"need one text per image: {img.shape[0]} images vs {txt.shape[0]} texts")
    n = img.shape[0]
    if n < 2:
        raise ValueError("contrastive alignment needs at least 2 pairs")
    if not (np.isfinite(img).all() and np.isfinite(txt).all()):
        raise ValueError("features contain NaN/inf")
    if epochs < 0:
        raise ValueError("epochs must be >= 0")
    bs = max(2, min(int(batch_size), n))

    dev = _resolve_train_device(device)
    config = HeadConfig(
        kind=head, in_dim=img.shape[1], out_dim=txt.shape[1], hidden_dim=hidden_dim, dropout=dropout
    )

    with _torch_threads(num_threads), torch.random.fork_rng(
        devices=[dev.index or 0] if dev.type == "cuda" else []
    ):
        torch.manual_seed(seed)
        model = ProjectionHead(config).to(dev)
        logit_scale = nn.Parameter(
            torch.tensor(math.log(1.0 / init_temperature), device=dev), requires_grad=learn_temperature
        )
        x_all = torch.from_numpy(img).to(dev)
        t_all = F.normalize(torch.from_numpy(txt).to(dev), dim=-1)
        params = [{"params": model.parameters(), "weight_decay": weight_decay}]
        if learn_temperature:
            params.append({"params": [logit_scale], "weight_decay": 0.0})
        opt = torch.optim.AdamW(params, lr=lr)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        max_ls = math.log(max_logit_scale)

        @torch.no_grad()
        def eval_loss() -> float:
            model.eval()
            total = 0.0
            count = 0
            for s in range(0, n, bs):
                xb, tb = x_all[s : s + bs], t_all[s : s + bs]
                if xb.shape[0] < 2:
                    continue
                loss = info_nce_loss(F.normalize(model(xb), dim=-1), tb, logit_scale)
                total += float(loss) * xb.shape[0]
                count += xb.shape[0]
            return total / max(count, 1)

        loss_curve = [eval_loss()]
        train_curve: list[float] = []
        for _ in range(epochs):
            model.train()
            perm = torch.randperm(n, generator=gen).to(dev)
            running, batches = 0.0, 0
            for s in range(0, n, bs):
                idx = perm[s : s + bs]
                if idx.numel() < 2:  # a lone leftover pair has no negatives
                    continue
                loss = info_nce_loss(F.normalize(model(x_all[idx]), dim=-1), t_all[idx], logit_scale)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    logit_scale.clamp_(0.0, max_ls)
                running += float(loss.detach())
                batches += 1
            train_curve.append(running / max(batches, 1))
            loss_curve.append(eval_loss())

    model.eval()
    ls = float(logit_scale.detach())
    return AlignmentResult(
        state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        loss_curve=loss_curve,
        head_config=config,
        train_loss_curve=train_curve,
        temperature=math.exp(-ls),
        logit_scale=ls,
        epochs=epochs,
        lr=lr,
        batch_size=bs,
        seed=seed,
        n_pairs=n,
    )
