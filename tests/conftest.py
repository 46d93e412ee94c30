"""Shared pytest fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nerfgen.ops import _backend
from tests.kernels import CXX

REPO = Path(__file__).resolve().parents[1]

# The shared datasets live beside the repository: <repo>/../shared/data (never copied into it).
DATA_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of the shared real datasets; skips the test when it is absent."""
    if not DATA_DIR.is_dir():
        pytest.skip("../shared/data not found: real-data tests need the shared datasets beside the repo")
    return DATA_DIR


@pytest.fixture(scope="module")
def kernels() -> None:
    """Builds (or loads) the kernels; skips only when no compiler exists or torch is forced."""
    if shutil.which(CXX) is None:
        pytest.skip(f"no C++ compiler ({CXX!r} not on PATH): the kernels cannot be built")
    if _backend.backend_mode() == "torch":
        pytest.skip("NERFGEN_BACKEND=torch forces the torch twins")
    assert _backend.backend_available(), f"the C++ kernels did not build:\n{_backend.backend_error()}"


class Interrupted(Exception):
    """Raised by :func:`interrupt_after` to stop a run as a crash or Ctrl+C would."""


def interrupt_after(engine, step: int) -> None:
    """Run ``engine`` and stop it as if interrupted right after step ``step`` (its hooks have run,
    its checkpoint at ``step`` has not been written by them)."""

    def stop(report) -> None:
        if report.step == step + 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        engine.run([stop])
