"""Shared fixtures: the data root (``$OMNISSL_DATA_DIR``) and a scratch run directory."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
# Trained tokenisers, fitted schemas and PyG caches go to a per-session folder, never the user's ~/.cache.
os.environ.setdefault("OMNISSL_CACHE_DIR", tempfile.mkdtemp(prefix="omnissl-test-cache-"))


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Real datasets (``../shared/datasets`` in CI). Missing data is a failure, never a silent skip."""
    root = Path(os.environ.get("OMNISSL_DATA_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "datasets"))
    if not root.is_dir():
        pytest.fail(f"data root {root} not found: set OMNISSL_DATA_DIR to the shared datasets folder")
    return root


@pytest.fixture(scope="module")
def one_thread():  # noqa: ANN201 - a generator fixture
    """One intra-op thread for modules of tiny convolutions: on an oversubscribed CPU two spinning OpenMP threads
    make them ~10× slower. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
