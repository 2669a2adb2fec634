"""The stratified held-out split: how a reader whose source has no test split of its own makes one.

Used by every reader that may lack an official test split (digits, idx, folder, npz). The rule is
scikit-learn's ``train_test_split(stratify=labels, test_size=test_fraction, random_state=seed)``, each
split kept in the original order; the same seed always gives the same, disjoint splits.
"""

from __future__ import annotations

import numpy as np

from supcon.data.base import DatasetError


def _stratified_indices(
    labels: np.ndarray, split: str, seed: int, test_fraction: float, source: str
) -> np.ndarray:
    """Indices (sorted) of ``split`` in a stratified train/test split of ``labels: (N,)``."""
    # scikit-learn is imported here, not at the top: it adds about a second to every `supcon` start.
    from sklearn.model_selection import train_test_split

    if len(labels) == 0:
        raise DatasetError(f"{source} holds no samples")
    try:
        train_idx, test_idx = train_test_split(
            np.arange(len(labels)), test_size=test_fraction, random_state=seed, stratify=labels
        )
    except ValueError as err:
        raise DatasetError(
            f"cannot make a stratified split of {source} with test_fraction={test_fraction} "
            f"({len(labels)} samples, {len(np.unique(labels))} classes): {err}"
        ) from err
    return np.sort(train_idx if split == "train" else test_idx)
