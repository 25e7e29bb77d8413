"""System programs some tests run (Debian packages): found on PATH, else the test skips with the install
command, unless ``CI`` is set, where a missing program is a failure, not a silent skip."""

from __future__ import annotations

import os
import shutil

import pytest


def require_program(name: str, debian_package: str) -> str:
    """The path of ``name``; skips (fails under CI) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install {debian_package})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
