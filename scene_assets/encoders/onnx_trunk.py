"""Run a CNN trunk's ``forward_features`` under ONNX Runtime on CPU.

On these 2-core machines ONNX Runtime runs EfficientNet-Lite0's feature pass about 2x faster than
eager PyTorch (``bench/bench_regions.py``: 40 vs 75-89 ms p50 for a 448 x 608 scene) with the same
features (max |Δ| ~1e-6 on region vectors), because it fuses the BN/activation chains and uses
depthwise-convolution kernels that eager mode lacks.  int8 dynamic quantization was measured and
rejected (slower here and |Δ| .35).

The graph is exported from the loaded torch module in memory (~1.5 s), never cached on disk: a
checkpoint or projection change can then never pair with a stale graph.  Every build checks itself
against the torch module on a probe input; a graph that does not match is refused, and the caller
keeps torch with the reason recorded."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

TRUNK_RUNTIMES = ("auto", "torch", "onnxruntime")
# Tolerance of the build-time check and of the tests: fp32 kernels that sum in another order differ
# by ~1e-6 on this net's feature maps; anything near 1e-3 would be a wrong graph, not rounding.
MATCH_ATOL = 1e-4


class TrunkRuntimeUnavailable(RuntimeError):
    """ONNX Runtime cannot run this trunk here (package missing, export failed, outputs differ)."""


def onnxruntime_missing() -> str | None:
    """Why ONNX Runtime cannot be used in this environment, or None when it can."""
    try:
        import onnx  # noqa: F401  (torch.onnx.export writes the graph with it)
        import onnxruntime  # noqa: F401
    except ImportError as e:
        return f"{e.name or e} is not installed (`pip install onnxruntime onnx`)"
    return None


def _feature_map_module(trunk: "torch.nn.Module") -> "torch.nn.Module":
    """``forward_features`` as ``forward``, so the export sees the conv feature map (pooling is a
    mean taken afterwards: one graph serves region maps and pooled product features)."""
    import torch

    class FeatureMap(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net.forward_features(x)

    return FeatureMap(trunk).eval()


@dataclass
class OnnxTrunk:
    """An ONNX Runtime session computing ``trunk.forward_features`` for ``B x 3 x H x W`` float32
    inputs of any batch size and spatial size."""

    session: Any
    threads: int
    max_abs_diff: float  # of the build-time check against torch
    export_seconds: float

    @classmethod
    def from_torch(cls, trunk: "torch.nn.Module", threads: int, probe_size: tuple[int, int] = (224, 288)) -> "OnnxTrunk":
        """Export ``trunk`` (timm model, eval mode) and open a CPU session with ``threads`` intra-op
        threads.  Raises :class:`TrunkRuntimeUnavailable` when that cannot be done faithfully."""
        import time

        import torch

        missing = onnxruntime_missing()
        if missing:
            raise TrunkRuntimeUnavailable(missing)
        import onnxruntime as ort

        module = _feature_map_module(trunk)
        generator = torch.Generator().manual_seed(0)
        probe = torch.randn(2, 3, *probe_size, generator=generator)
        started = time.perf_counter()
        buffer = io.BytesIO()
        try:
            with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
                # The TorchScript exporter: ~1.5 s and no onnxscript dependency; the dynamo exporter
                # that replaces it takes far longer for the same graph on this net.
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.onnx.export(
                    module, probe, buffer, input_names=["image"], output_names=["feature_map"],
                    dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                  "feature_map": {0: "batch", 2: "map_height", 3: "map_width"}},
                    opset_version=17, dynamo=False,
                )
        except Exception as e:  # any exporter failure leaves the caller on torch
            raise TrunkRuntimeUnavailable(f"ONNX export failed: {type(e).__name__}: {e}") from e
        export_seconds = time.perf_counter() - started
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: shape-inference notes are not news to users
        # No busy-waiting between runs: spinning pool threads would take the cores from the torch and
        # numpy work (resize, pooling, search) that follows each forward pass in a scene query.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise TrunkRuntimeUnavailable(f"ONNX Runtime could not load the exported graph: {e}") from e
        with torch.inference_mode():
            expected = module(probe.contiguous(memory_format=torch.channels_last)).float().numpy()
        diff = float(np.abs(session.run(None, {"image": probe.numpy()})[0] - expected).max())
        if not diff <= MATCH_ATOL:
            raise TrunkRuntimeUnavailable(f"ONNX Runtime feature map differs from torch by {diff:.2e} (> {MATCH_ATOL})")
        return cls(session=session, threads=int(threads), max_abs_diff=diff, export_seconds=export_seconds)

    def feature_map(self, images: np.ndarray) -> np.ndarray:
        """``B x 3 x H x W`` float32 -> ``B x C x h x w`` float32 feature map."""
        x = np.ascontiguousarray(images, dtype=np.float32)
        return self.session.run(None, {"image": x})[0]

    def pooled(self, images: np.ndarray) -> np.ndarray:
        """Global average pool of the feature map (timm's ``avg`` pool): ``B x C`` float32."""
        return self.feature_map(images).mean(axis=(2, 3), dtype=np.float32)
