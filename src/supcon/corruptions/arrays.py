"""Reader for the published CIFAR-10-C / CIFAR-100-C arrays (one ``.npy`` per corruption)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from supcon.corruptions.registry import check_name, check_severity


def load_corrupted_arrays(root: str | Path, name: str, severity: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one corruption and severity from a CIFAR-10-C / CIFAR-100-C directory.

    The published layout is ``root/<name>.npy``, uint8 of shape (5 * n, 32, 32, 3) holding the n
    test images at severity 1, then 2, ..., 5 (n = 10000), and ``root/labels.npy`` of shape
    (5 * n,). Smaller n (and other image sizes) are accepted.

    Args:
        root: directory holding the ``.npy`` files.
        name: one of ``CORRUPTIONS`` or ``EXTRA_CORRUPTIONS``.
        severity: int from 1 to 5.

    Returns:
        images (n, 3, H, W) uint8 and labels (n,) int64.

    Raises:
        ValueError: unknown ``name`` or ``severity``, a missing file, or arrays of the wrong
            shape or dtype (the message names the file).
    """
    check_name(name)
    severity = check_severity(severity)
    root = Path(root)
    image_path, label_path = root / f"{name}.npy", root / "labels.npy"
    for path in (image_path, label_path):
        if not path.is_file():
            raise ValueError(f"{path} not found: expected the CIFAR-10-C layout (<name>.npy and labels.npy in {root})")
    images = np.load(image_path, mmap_mode="r", allow_pickle=False)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] == 0 or images.shape[0] % 5:
        raise ValueError(f"{image_path} has shape {images.shape}, expected (5 * n, H, W, 3) with n >= 1")
    if images.dtype != np.uint8:
        raise ValueError(f"{image_path} has dtype {images.dtype}, expected uint8")
    labels = np.load(label_path, mmap_mode="r", allow_pickle=False)
    if labels.shape != (images.shape[0],):
        raise ValueError(f"{label_path} has shape {labels.shape}, expected ({images.shape[0]},) to match {image_path}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{label_path} has dtype {labels.dtype}, expected an integer dtype")
    n = images.shape[0] // 5
    part = slice((severity - 1) * n, severity * n)
    image_tensor = torch.from_numpy(np.ascontiguousarray(np.asarray(images[part]).transpose(0, 3, 1, 2)))
    label_tensor = torch.from_numpy(np.asarray(labels[part]).astype(np.int64))
    return image_tensor, label_tensor
