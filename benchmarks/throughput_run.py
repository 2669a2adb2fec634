"""One row of benchmarks/throughput.py, timed in a fresh process (``run_row``).

Every (model, path, variant, round) runs in its own spawned process, so no state carries over
from one row to the next: not malloc's settings (``keep_freed_memory`` is part of our path, the
reference keeps glibc's defaults), not the thread pools, not memory held by an earlier model.
"""

from __future__ import annotations

import gc
import time
import traceback
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from throughput_ours import VARIANTS, ours_setup
from throughput_recipe import PhaseTimer, forward_flops_per_image, synthetic_dataset
from throughput_reference import reference_setup

__all__ = ["run_row", "time_steps", "split_steps", "count_syncs"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Callable[[int], Tensor], device: torch.device, warmup: int, steps: int,
               timer: PhaseTimer) -> tuple[float, dict[str, float] | None]:
    """Seconds for ``steps`` steps after ``warmup`` untimed ones, and (CPU) their time split."""
    for i in range(warmup):
        step(i)
    _sync(device)
    if device.type == "cpu":
        timer.start(sync=False)
    t0 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step(i)
    _sync(device)
    seconds = time.perf_counter() - t0
    return seconds, timer.stop() if device.type == "cpu" else None


def split_steps(step: Callable[[int], Tensor], timer: PhaseTimer, first: int, steps: int) -> dict[str, float]:
    """The time split of ``steps`` untimed steps, synchronised at every phase boundary (CUDA)."""
    timer.start(sync=True)
    for i in range(first, first + steps):
        step(i)
    return timer.stop()


def count_syncs(step: Callable[[int], Tensor], device: torch.device, first: int, steps: int = 2) -> float | None:
    """Host-device synchronisations per step (CUDA only), from the sync-debug warnings."""
    if device.type != "cuda" or steps < 1:
        return None
    _sync(device)
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for i in range(first, first + steps):
                step(i)
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    _sync(device)
    return sum(1 for w in caught if "synchroniz" in str(w.message).lower()) / steps


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def run_row(settings: dict[str, Any], arch: str, path: str, variant: str | None) -> dict[str, Any]:
    """Times one (model, path, variant) with ``settings`` (the benchmark's arguments as plain
    values); returns its row (``error`` set where it could not run). Meant for a fresh process."""
    device = torch.device(settings["device"])
    if settings["threads"] is not None:
        torch.set_num_threads(settings["threads"])
    if device.type == "cuda":
        torch.cuda.set_device(device)
    images, labels = synthetic_dataset(settings["n_images"], settings["seed"])
    batch, warmup, split = settings["batch"], settings["warmup"], settings["split_steps"]
    row: dict[str, Any] = {"model": arch, "width": settings["width"], "path": path, "variant": variant,
                           "batch": batch, "threads": torch.get_num_threads()}
    timer = PhaseTimer(device)
    step = model = batches = None
    try:
        if path == "ours":
            step, model, _, info = ours_setup(arch, settings["width"], batch, str(device), settings["compile"],
                                              images, labels, VARIANTS[variant], timer)
            row.update(info)
            steps = settings["steps"]
        else:
            workers = settings["workers"]
            step, model, batches = reference_setup(arch, settings["width"], batch, device, workers,
                                                   images, labels, settings["seed"], timer)
            row.update(amp="fp32", compile=False, channels_last=False, fused_sgd=False, keeps_freed_memory=False,
                       augment=f"Pillow, {workers} DataLoader workers")
            steps = settings["reference_steps"]
        row["flops_per_image"] = 3 * forward_flops_per_image(model, device, min(batch, 8))
        seconds, split_ms = time_steps(step, device, warmup, steps, timer)
        row.update(steps=steps, seconds=seconds, images_per_s=batch * steps / seconds)
        if split_ms is None and split:
            split_ms = split_steps(step, timer, warmup + steps, split)
        row["split_ms"] = split_ms
        row["syncs_per_step"] = count_syncs(step, device, warmup + steps + split)
        if device.type == "cuda":
            row["max_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    except Exception as exc:  # one failing row must not lose the others
        if _is_oom(exc):
            row["error"] = "out of memory"
        else:
            traceback.print_exc()
            row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
            row["failed"] = True
    finally:
        step = model = batches = None  # noqa: F841 (drop the DataLoader workers and the model)
        _free(device)
    return row
