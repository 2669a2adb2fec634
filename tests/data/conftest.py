"""Every dataset test writes its decode cache to a fresh folder of its own, never to ``~/.cache``."""

from __future__ import annotations

from pathlib import Path

import pytest

from supcon.data.cache import CACHE_DIR_ENV


@pytest.fixture(autouse=True)
def private_cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``SUPCON_CACHE_DIR`` pointed at a new folder outside the test's ``tmp_path`` (returned)."""
    folder = tmp_path_factory.mktemp("supcon-cache")
    monkeypatch.setenv(CACHE_DIR_ENV, str(folder))
    return folder
