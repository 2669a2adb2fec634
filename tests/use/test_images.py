"""``supcon.use.images``: listing loose image files and fitting images to an encoder's channels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from supcon.config import ConfigError
from supcon.use.images import decode_images, list_image_files, match_channels


def test_folders_are_walked_sorted_without_hidden_or_foreign_files(tmp_path):
    for rel in ["b/2.png", "a/1.jpg", "a/.hidden.png", ".cache/x.png", "notes.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    named = tmp_path / "notes.txt"
    assert list_image_files([tmp_path, named]) == [tmp_path / "a/1.jpg", tmp_path / "b/2.png", named]


def test_decode_reports_unreadable_files_and_fits_the_side(tmp_path):
    Image.fromarray(np.full((10, 20, 3), 200, dtype=np.uint8)).save(tmp_path / "wide.png")
    (tmp_path / "bad.png").write_bytes(b"junk")
    images, failures = decode_images([tmp_path / "wide.png", tmp_path / "bad.png"], 1, 6)
    assert images.shape == (2, 1, 6, 6) and images.dtype == torch.uint8
    assert bool((images[0] == 200).all()) and bool((images[1] == 0).all())
    assert list(failures) == [1] and "bad.png" in failures[1]
    with pytest.raises(ConfigError, match="images of 4 channels"):
        decode_images([tmp_path / "wide.png"], 4, 6)


def test_match_channels():
    gray = torch.randint(0, 256, (2, 1, 3, 3), dtype=torch.uint8)
    rgb = match_channels(gray, 3)
    assert rgb.shape == (2, 3, 3, 3) and bool((rgb == gray).all())
    assert torch.equal(match_channels(rgb, 1), gray)  # equal channels: the gray value back
    assert match_channels(gray, 1) is gray
    with pytest.raises(ConfigError, match="only gray <-> RGB"):
        match_channels(gray, 2)
