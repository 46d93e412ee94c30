"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

# The shared datasets live beside the repository: <repo>/../shared/data (never copied into it).
DATA_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of the shared real datasets; skips the test when it is absent."""
    if not DATA_DIR.is_dir():
        pytest.skip("../shared/data not found: real-data tests need the shared datasets beside the repo")
    return DATA_DIR

REPO = Path(__file__).resolve().parents[1]
