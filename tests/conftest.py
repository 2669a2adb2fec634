"""Shared fixtures: a tiny on-disk dataset and tiny configs, so training tests take seconds on a CPU.

``torch.set_num_threads(1)``: the tests run tiny tensors on shared CPUs, where intra-op threads
only add contention (one small-CNN step measured ~17x slower with 2 threads on a loaded 2-core box).
The helpers live in ``tiny_runs.py`` so test modules can import them by a name no other conftest shares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from supcon.data.cache import CACHE_DIR_ENV
from tiny_runs import TINY_SETTINGS, flags_for, write_tiny_npz

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64-train / 32-test, 4-class, 8x8 grayscale npz dataset, written once per session."""
    return write_tiny_npz(tmp_path_factory.mktemp("tiny_data") / "tiny.npz")


@pytest.fixture
def tiny_config(tiny_npz: Path):
    """Factory: ``tiny_config(**overrides)`` -> a :class:`supcon.config.Config` on the tiny npz."""
    from supcon.config import config_from_dict

    def make(**overrides: Any):
        values = {"dataset": f"npz:{tiny_npz}", **TINY_SETTINGS, **overrides}
        return config_from_dict(values)

    return make


@pytest.fixture
def tiny_flags(tiny_npz: Path):
    """Factory: ``tiny_flags(**overrides)`` -> CLI flags selecting the tiny npz and tiny settings."""

    def make(**overrides: Any) -> list[str]:
        return flags_for({"dataset": f"npz:{tiny_npz}", **TINY_SETTINGS, **overrides})

    return make


@pytest.fixture(autouse=True)
def private_cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test writes the folder-decode cache to a fresh folder of its own, never to ``~/.cache``
    (``SUPCON_CACHE_DIR`` pointed at a new folder outside the test's ``tmp_path``, returned)."""
    folder = tmp_path_factory.mktemp("supcon-cache")
    monkeypatch.setenv(CACHE_DIR_ENV, str(folder))
    return folder
