"""Helpers shared by the dataset tests in tests/data (imported by plain name)."""

from __future__ import annotations

import torch


def sorted_rows(images: torch.Tensor) -> list[bytes]:
    """Every image's bytes, sorted: compares two image sets as multisets, whatever their order."""
    return sorted(row.numpy().tobytes() for row in images.reshape(images.shape[0], -1))
