"""Process-memory helpers of the serving process."""

from __future__ import annotations

import subprocess
import sys

from scene_assets.memory import keep_gpu_compilers_out

_CHILD = """
import sys
from scene_assets.memory import keep_gpu_compilers_out
assert keep_gpu_compilers_out("cuda") is False          # a GPU process keeps triton
assert keep_gpu_compilers_out("cpu") is True
assert keep_gpu_compilers_out("cpu") is False    # already applied: nothing more to do
import torch, torchvision, timm                           # the default encoder's imports still work
from scene_assets.encoders import build_encoder
from PIL import Image
enc = build_encoder()
fmap = enc.image_feature_map(Image.new("RGB", (96, 64), (200, 120, 40)), size=(64, 96))
assert fmap.shape[0] == 1280 and sys.modules["triton"] is None
libs = open("/proc/self/maps").read()
assert "libtriton" not in libs, "libtriton.so was mapped"
print("ok")
"""


def test_keep_gpu_compilers_out_in_a_cpu_process():
    proc = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok")


def test_keep_gpu_compilers_out_is_a_no_op_once_triton_is_loaded(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", object())
    assert keep_gpu_compilers_out("cpu") is False
