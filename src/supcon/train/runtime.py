"""Where and how a run computes: device, precision, seeds, and the DDP / compile wrappers."""

from __future__ import annotations

import ctypes
import logging
import sys
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from supcon import distributed as dist_utils
from supcon.config import Config, ConfigError
from supcon.devices import autocast, resolve_device
from supcon.metrics import Inference

__all__ = ["Runtime", "setup_runtime", "seed_everything", "prepare_model", "wrap", "ddp", "unwrap",
           "place", "CHANNELS_LAST_DEVICES", "keep_freed_memory"]

log = logging.getLogger(__name__)

#: Devices whose convolutions are faster in channels_last (``cfg.channels_last`` applies there).
CHANNELS_LAST_DEVICES: frozenset[str] = frozenset({"cuda", "cpu"})


@dataclass
class Runtime:
    """Where and how a run computes."""

    device: torch.device
    amp_dtype: torch.dtype | None
    rank: int = 0
    world_size: int = 1
    channels_last: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self):
        """The autocast context of this run's forward passes."""
        return autocast(self.device, self.amp_dtype)

    @property
    def uses_channels_last(self) -> bool:
        """Whether models and 4-D inputs are channels_last: asked for, on CUDA or the CPU (oneDNN's
        convolutions run there about 1.5x (cifar-fast) to 2x (ResNet-18) faster in that layout)."""
        return self.channels_last and self.device.type in CHANNELS_LAST_DEVICES

    def format(self, x: Tensor) -> Tensor:
        """Images in the memory layout this run's models expect."""
        if self.uses_channels_last and x.ndim == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def inference(self, batch_size: int = 512) -> Inference:
        """How :mod:`supcon.metrics` evaluates models of this run."""
        return Inference(self.device, self.amp_dtype, self.channels_last, batch_size)


def setup_runtime(cfg: Config) -> Runtime:
    """Resolves the device and precision, and joins the process group under torchrun.

    Raises:
        ConfigError: an unknown device or one this machine does not have.
    """
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    resolve_device(cfg.device)  # a bad --device fails before any process group is joined
    rank, world_size, local_rank = dist_utils.init_from_env(cfg.device)
    device = resolve_device(cfg.device, local_rank)
    if device.type == "cpu":
        keep_freed_memory()
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    amp = None
    if cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda"):
        amp = torch.bfloat16
    return Runtime(device=device, amp_dtype=amp, rank=rank, world_size=world_size,
                   channels_last=cfg.channels_last)


#: glibc's mallopt parameters (malloc.h) and the largest value it takes (an int).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MALLOPT_MAX = 2**31 - 1


def keep_freed_memory() -> bool:
    """Lets glibc's malloc keep freed tensors' memory for the next step (the CPU's cudnn.benchmark).

    By default glibc maps every allocation above 32 MiB fresh from the kernel and unmaps it when
    it is freed, so each CPU training step page-faults and zeroes all its activations again: a
    third of ResNet-18's step on 2 cores (batch 256 x 2 views), a tenth of cifar-fast's. With the
    mmap and trim thresholds at 2 GiB, big blocks come from the heap and stay there after the
    first steps; the process keeps its peak memory instead of returning it. A process-wide
    setting, applied once per run on the CPU; a no-op (False) where the C library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    applied = bool(mallopt(_M_MMAP_THRESHOLD, _MALLOPT_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, _MALLOPT_MAX))
    log.debug("glibc malloc keeps freed memory up to %d bytes: %s", _MALLOPT_MAX, applied)
    return applied


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seeds the global RNGs; every rank gets its own stream (augmentations differ per rank)."""
    torch.manual_seed(seed + 1_000_003 * rank)


def place(images: Tensor, device: torch.device) -> Tensor:
    """Puts the uint8 dataset on the GPU when it fits comfortably, else keeps it (pinned) on CPU."""
    if device.type != "cuda":
        return images
    free, _ = torch.cuda.mem_get_info(device)
    if images.numel() < 0.25 * free:
        return images.to(device, non_blocking=True)
    return images.pin_memory()


def prepare_model(model: nn.Module, rt: Runtime) -> nn.Module:
    """``model`` on the run's device, channels_last (CUDA, CPU) when asked for."""
    model = model.to(rt.device)
    if rt.uses_channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def wrap(model: nn.Module, cfg: Config, rt: Runtime) -> nn.Module:
    """DDP (under torchrun) and torch.compile wrappers around a prepared model."""
    if rt.distributed:
        if cfg.sync_bn:
            if rt.device.type != "cuda":
                raise ConfigError(
                    f"sync_bn needs CUDA devices (SyncBatchNorm has no {rt.device.type} kernel): "
                    "drop --sync-bn for gloo/CPU runs")
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = ddp(model, rt)
    if cfg.compile:
        model = torch.compile(model)
    return model


def ddp(module: nn.Module, rt: Runtime) -> nn.Module:
    """DDP around a module under torchrun (rank 0's initial weights are broadcast and gradients
    averaged, so every rank holds the same weights); the module itself otherwise."""
    if not rt.distributed:
        return module
    ids = [rt.device.index] if rt.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module under DDP and torch.compile wrappers."""
    while True:
        if hasattr(module, "_orig_mod"):
            module = module._orig_mod
        elif isinstance(module, nn.parallel.DistributedDataParallel):
            module = module.module
        else:
            return module
