"""Shared by the kernel tests: the compilers they use."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CXX = os.environ.get("CXX", "c++")
REPO = Path(__file__).resolve().parents[1]
NVCC = shutil.which("nvcc") or next(
    (str(p) for p in [Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "bin" / "nvcc"] if p.is_file()), None
)
