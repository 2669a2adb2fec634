"""Device names -> ``torch.device``: the one rule every command uses to pick where it computes."""

from __future__ import annotations

import torch

from supcon.config import ConfigError

__all__ = ["resolve_device", "autocast", "memory_format"]

_HELP = "use auto, cpu, cuda or cuda:N"


def resolve_device(spec: str | torch.device, local_rank: int = 0) -> torch.device:
    """The device named by ``spec`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``).

    ``auto`` is ``cuda:<local_rank>`` when CUDA is available, else the CPU; a bare ``cuda`` is
    ``cuda:<local_rank>`` (under torchrun each process takes its own GPU). A CUDA device gets its
    index filled in, so ``torch.cuda.set_device`` accepts it.

    Raises:
        ConfigError: an unknown device name, or a device this machine does not have.
    """
    text = str(spec)
    if text == "auto":
        text = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    elif text == "cuda":
        text = f"cuda:{local_rank}"
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device {str(spec)!r} is not a device name: {_HELP}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {str(spec)!r} asked for, but CUDA is not available on this machine: "
                              "use --device cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {str(spec)!r} asked for, but this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"device {str(spec)!r} asked for, but MPS is not available on this machine")
    elif device.type != "cpu":
        raise ConfigError(f"device {str(spec)!r} cannot train or evaluate a model: {_HELP}")
    return device


def autocast(device: torch.device, amp_dtype: torch.dtype | None):
    """``torch.autocast`` to ``amp_dtype`` on ``device``, or a disabled one when ``amp_dtype`` is None."""
    if amp_dtype is None:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=amp_dtype)


def memory_format(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """``x`` in channels_last layout on CUDA when asked for (the fast layout for convolutions there)."""
    if device.type == "cuda" and channels_last:
        return x.contiguous(memory_format=torch.channels_last)
    return x
