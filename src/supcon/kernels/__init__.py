"""Fused GPU kernels for the tiled SupCon path (Triton), with a pure-PyTorch fallback elsewhere.

The loss asks :func:`triton_applicable` whether the fused kernel can serve a call; when it can't
(no CUDA tensor, Triton missing, or an option the kernel does not implement) the PyTorch tiled
path runs instead, with identical results.
"""

from __future__ import annotations

import functools
import importlib.util
import os

from torch import Tensor

__all__ = ["triton_available", "triton_applicable", "triton_row_losses"]


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    """True when Triton and the kernel module are importable (Triton is optional). Cached: the
    loss asks on every call."""
    return (importlib.util.find_spec("triton") is not None
            and importlib.util.find_spec("supcon.kernels.triton_supcon") is not None)


def triton_applicable(anchors: Tensor, spec: object, variant: str, denominator: str) -> bool:
    """Whether the fused Triton kernel implements this call on this device."""
    if os.environ.get("SUPCON_DISABLE_TRITON") == "1":
        return False
    forced = os.environ.get("TRITON_INTERPRET") == "1" and os.environ.get("SUPCON_FORCE_TRITON") == "1"
    if not (anchors.is_cuda or forced) or not triton_available():
        return False
    from supcon.kernels.triton_supcon import supports

    return supports(anchors, spec, variant, denominator)


def triton_row_losses(anchors: Tensor, contrast: Tensor, spec: object, inv_t: float, variant: str):
    """Per-anchor losses and positive counts from the fused kernel; see supcon.kernels.triton_supcon."""
    from supcon.kernels.triton_supcon import row_losses

    return row_losses(anchors, contrast, spec, inv_t, variant)
