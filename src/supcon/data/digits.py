"""Reader for scikit-learn's 8x8 digits (1,797 images, 10 classes): spec ``digits``, the offline default.

Values 0..16 are scaled to 0..255 and rounded; 1 channel. The set has no test split of its own, so both
splits come from the stratified held-out rule (:mod:`supcon.data.stratified`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from supcon.data.base import ImageDataset, ReadRequest, _make_dataset
from supcon.data.stratified import _stratified_indices


def read_digits(path: Path | None, request: ReadRequest) -> ImageDataset:
    """One split of the digits; ``path`` is unused (the spec takes none)."""
    # scikit-learn is imported here, not at the top: it adds about a second to every `supcon` start.
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(np.asarray(bunch.images, dtype=np.float64) * (255.0 / 16.0)).astype(np.uint8)[:, None]
    labels = np.asarray(bunch.target, dtype=np.int64)
    index = _stratified_indices(labels, request.split, request.seed, request.test_fraction, "digits")
    return _make_dataset(images[index], labels[index], [str(k) for k in range(10)], "digits")
