"""Pretraining throughput: images/s of one SupCon training step, this project vs the reference style.

Two paths train the same encoder (ResNet with the CIFAR stem + MLP head) on the same synthetic
uint8 32x32 RGB data (100 classes), 2 views per image, measured in the same process on the same
device:

* ``ours``: the step :func:`supcon.train.methods.pretrain` runs, built from the engine's own pieces
  (``setup_runtime``, ``build_supcon_model``, ``_prepare_model``/``_wrap`` for channels_last and
  ``--compile``, ``_autocast`` for bf16 on CUDA, ``build_optimizer`` with fused SGD on CUDA,
  ``SupConLoss`` without input checks on CUDA). The uint8 dataset is held on the device
  (``_place``); each step indexes a batch there, augments both views in one batched kornia call
  (``make_views``), normalises, and never reads a value back to the host.
* ``reference``: the style of the original PyTorch SupContrast code (HobbitLong/SupContrast,
  ``main_supcon.py``): a ``torch.utils.data.Dataset`` of Pillow images, a two-crop transform run on
  the CPU in ``DataLoader`` workers (RandomResizedCrop 0.2-1, horizontal flip, colour jitter
  0.4/0.4/0.4/0.1 with p=0.8, grayscale p=0.2, ToTensor + Normalize), written here with Pillow and
  NumPy only (no torchvision); pinned batches copied with ``non_blocking``; fp32, eager, the default
  memory format, non-fused SGD (PyTorch's default implementation), the all-matrices loss of that code
  and its ``loss.item()`` every step. Random draws use Python's ``random`` (cheaper than
  torchvision's ``torch.rand`` per parameter), so this baseline is, if anything, a little fast.

Timing: ``--warmup`` untimed steps (compilation and cuDNN autotuning happen there), then
``torch.cuda.synchronize``, ``--steps`` timed steps, ``torch.cuda.synchronize``;
images/s = batch x steps / seconds (an image is one sample; each carries 2 views). The reference
times ``max(--steps, 4 x workers)`` steps unless ``--reference-steps`` says otherwise: its workers
deliver batches in rounds of ``workers``, and a window of a few rounds keeps that quantisation small.

MFU (model FLOPs utilisation) = forward+backward model FLOPs per image (3 x forward, the forward
counted by ``torch.utils.flop_counter.FlopCounterMode`` over 2 views per image; exact per image since
every counted op is per-sample) x images/s / the GPU's dense bf16 peak (H100 SXM / H200 989, H100
PCIe 756, H100 NVL 835, A100 312 TFLOP/s; ``--peak-tflops`` overrides). The loss's similarity
matmuls and the augmentation are not counted.

On CUDA a short untimed probe after the timed steps counts host-device synchronisations per step
(``torch.cuda.set_sync_debug_mode("warn")``): the project's step should show 0.

The script prints numbers and asserts no timings.

Usage::

    python benchmarks/throughput.py                      # resnet18 + resnet50, batch 1024, both paths
    python benchmarks/throughput.py --compile --json runs/throughput.json
    python benchmarks/throughput.py --quick --device cpu --workers 0     # a seconds-long smoke run
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import platform
import random
import shlex
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageEnhance
from torch import Tensor

SRC = Path(__file__).resolve().parents[1] / "src"
if SRC.is_dir() and str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

from supcon.augment import Normalize, build_augmentation, make_views  # noqa: E402
from supcon.config import Config  # noqa: E402
from supcon.train.methods.pretrain import EncoderAndHead, build_supcon_model, contrastive_step  # noqa: E402
from supcon.train.runtime import Runtime, place, prepare_model, setup_runtime, wrap  # noqa: E402
from supcon.train.optim import build_optimizer, learning_rate, set_learning_rate  # noqa: E402

PATHS = ("ours", "reference")
MODELS = ("resnet18", "resnet50")
IMAGE_SIZE = 32
CHANNELS = 3
NUM_CLASSES = 100
VIEWS = 2
#: CIFAR-100 training-set statistics, used by both paths.
MEAN = (0.5071, 0.4865, 0.4409)
STD = (0.2673, 0.2564, 0.2762)
#: Dense bf16 tensor-core peaks (FLOP/s), matched against torch.cuda.get_device_name in order.
PEAK_BF16: tuple[tuple[tuple[str, ...], float], ...] = (
    (("H100", "PCIE"), 756e12),
    (("H100", "NVL"), 835e12),
    (("H100",), 989e12),  # SXM5 ("NVIDIA H100 80GB HBM3")
    (("H200",), 989e12),  # also GH200
    (("H800",), 989e12),
    (("A100",), 312e12),
    (("A800",), 312e12),
)
LR = 0.5
FULL_DEFAULTS: dict[str, Any] = {"batch": 1024, "steps": 20, "warmup": 5, "models": ",".join(MODELS), "width": 1}
QUICK_DEFAULTS: dict[str, Any] = {"batch": 16, "steps": 2, "warmup": 1, "models": "resnet18", "width": 1}
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
TEMPERATURE = 0.1


# ---------------------------------------------------------------------------------------------
# Data and the FLOP count
# ---------------------------------------------------------------------------------------------


def synthetic_dataset(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """``n`` random uint8 images ``(n, 3, 32, 32)`` and labels ``(n,)`` in ``[0, 100)``."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, CHANNELS, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=gen)
    return images, labels


def peak_flops(device: torch.device, override_tflops: float | None) -> tuple[float | None, str]:
    """The dense bf16 peak in FLOP/s and where it came from (None where unknown)."""
    if override_tflops is not None:
        return override_tflops * 1e12, "--peak-tflops"
    if device.type != "cuda":
        return None, "unknown (not a GPU; pass --peak-tflops)"
    name = torch.cuda.get_device_name(device).upper()
    for keys, value in PEAK_BF16:
        if all(key in name for key in keys):
            return value, f"table ({' '.join(keys)})"
    return None, "unknown GPU (pass --peak-tflops)"


def forward_flops_per_image(model: torch.nn.Module, device: torch.device, images: int = 8) -> float:
    """Forward FLOPs of ``model`` per image (``VIEWS`` views), counted on ``images`` images.

    Convolutions and linear layers are per-sample, so the count scales exactly with the batch; a
    small batch keeps the count cheap. Runs in eval mode (batch-norm statistics untouched).
    """
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    x = torch.zeros(images * VIEWS, CHANNELS, IMAGE_SIZE, IMAGE_SIZE, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() / images


# ---------------------------------------------------------------------------------------------
# (a) this project's step
# ---------------------------------------------------------------------------------------------


def ours_setup(arch: str, width: int, batch: int, device: str, compile_model: bool,
               images: Tensor, labels: Tensor) -> tuple[Callable[[int], Tensor], torch.nn.Module, Runtime]:
    """The engine's pretraining step (supcon, no probe, no queue, one process) as ``step(i)``.

    Mirrors :func:`supcon.train.methods.pretrain` and the inner loop of ``fit``: learning rate set,
    batch indexed on the device, views augmented, forward under autocast, loss, zero_grad, backward,
    optimizer step, loss accumulated on the device. Returns the step, the plain model (for the FLOP
    count) and the runtime.
    """
    cfg = Config(arch=arch, width=width, batch_size=batch, device=device, compile=compile_model,
                 lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, temperature=TEMPERATURE,
                 views=VIEWS, epochs=1, progress=False, plots=False)
    rt = setup_runtime(cfg)
    model = prepare_model(build_supcon_model(cfg, CHANNELS), rt)
    net = wrap(EncoderAndHead(model), cfg, rt)
    optimizer = build_optimizer(model.parameters(), cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay,
                                fused=rt.device.type == "cuda" and cfg.optimizer == "sgd")
    augment = build_augmentation(cfg.augment, IMAGE_SIZE, CHANNELS, crop_scale=(cfg.crop_min, 1.0),
                                 blur=cfg.blur, flip=cfg.flip).to(rt.device)
    normalize = Normalize(MEAN, STD).to(rt.device)
    # The very step pretrain() runs (views, encoder + head under autocast, the loss), no probe or queue.
    batch_loss = contrastive_step(cfg, rt, net, augment, normalize, queue=None, probe_net=None)
    train_images = place(images, rt.device)
    train_labels = labels.to(rt.device)
    n = train_images.shape[0]
    # fit() copies each epoch's permutation to the device once; so does this.
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    image_order, label_order = order.to(train_images.device), order.to(train_labels.device)
    loss_sum = torch.zeros((), device=rt.device)
    total_steps = max(1, n // batch)
    model.train()

    def step(i: int) -> Tensor:
        nonlocal loss_sum
        start = (i * batch) % (n - batch + 1)
        set_learning_rate(optimizer, learning_rate(i % total_steps, total_steps, cfg.lr, 0, cfg.schedule))
        x = train_images[image_order[start:start + batch]].to(rt.device, non_blocking=True)
        y = train_labels[label_order[start:start + batch]]
        loss, _ = batch_loss(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach()
        return loss

    return step, model, rt


# ---------------------------------------------------------------------------------------------
# (b) the reference style: Pillow transforms in DataLoader workers
# ---------------------------------------------------------------------------------------------


class RandomResizedCropPIL:
    """torchvision's RandomResizedCrop sampling (10 tries, then a centre crop), Pillow crop + resize."""

    def __init__(self, size: int, scale: tuple[float, float] = (0.2, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> None:
        self.size, self.scale = size, scale
        self.log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        self.ratio = ratio

    def params(self, width: int, height: int) -> tuple[int, int, int, int]:
        area = width * height
        for _ in range(10):
            target = area * random.uniform(*self.scale)
            aspect = math.exp(random.uniform(*self.log_ratio))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return random.randint(0, width - w), random.randint(0, height - h), w, h
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            w, h = int(round(height * self.ratio[1])), height
        else:
            w, h = width, height
        return (width - w) // 2, (height - h) // 2, w, h

    def __call__(self, img: Image.Image) -> Image.Image:
        left, top, w, h = self.params(*img.size)
        return img.crop((left, top, left + w, top + h)).resize((self.size, self.size), Image.BILINEAR)


def adjust_hue_pil(img: Image.Image, hue: float) -> Image.Image:
    """Shift the hue by ``hue`` of a turn (|hue| <= 0.5) in HSV space, as torchvision does on Pillow."""
    h, s, v = img.convert("HSV").split()
    h_arr = np.asarray(h, dtype=np.uint8)
    with np.errstate(over="ignore"):
        h_arr = h_arr + np.uint8(int(hue * 255) % 256)  # uint8 wrap-around is the rotation
    return Image.merge("HSV", (Image.fromarray(h_arr, "L"), s, v)).convert("RGB")


class ColorJitterPIL:
    """Brightness, contrast, saturation, hue factors in a random order, applied with probability ``p``."""

    def __init__(self, brightness: float, contrast: float, saturation: float, hue: float, p: float) -> None:
        self.b, self.c, self.s, self.h, self.p = brightness, contrast, saturation, hue, p

    def __call__(self, img: Image.Image) -> Image.Image:
        if random.random() >= self.p:
            return img
        ops = [0, 1, 2, 3]
        random.shuffle(ops)
        for op in ops:
            if op == 0:
                img = ImageEnhance.Brightness(img).enhance(random.uniform(max(0.0, 1 - self.b), 1 + self.b))
            elif op == 1:
                img = ImageEnhance.Contrast(img).enhance(random.uniform(max(0.0, 1 - self.c), 1 + self.c))
            elif op == 2:
                img = ImageEnhance.Color(img).enhance(random.uniform(max(0.0, 1 - self.s), 1 + self.s))
            else:
                img = adjust_hue_pil(img, random.uniform(-self.h, self.h))
        return img


class SimAugmentPIL:
    """The reference SupCon CIFAR transform, Pillow image -> normalised ``(3, S, S)`` float tensor."""

    def __init__(self, size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.crop = RandomResizedCropPIL(size, scale=(0.2, 1.0))
        self.jitter = ColorJitterPIL(0.4, 0.4, 0.4, 0.1, p=0.8)
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)

    def __call__(self, img: Image.Image) -> Tensor:
        img = self.crop(img)
        if random.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        img = self.jitter(img)
        if random.random() < 0.2:
            img = img.convert("L").convert("RGB")
        arr = (np.asarray(img, dtype=np.float32) / 255.0 - self.mean) / self.std  # ToTensor + Normalize
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


class TwoCropTransform:
    """Two independent draws of ``transform`` for one image."""

    def __init__(self, transform: Callable[[Image.Image], Tensor]) -> None:
        self.transform = transform

    def __call__(self, img: Image.Image) -> list[Tensor]:
        return [self.transform(img), self.transform(img)]


class PILImageDataset(torch.utils.data.Dataset):
    """HWC uint8 images held as a NumPy array, served as Pillow images (like torchvision's CIFAR)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable[[Image.Image], Any]) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def reference_supcon_loss(features: Tensor, labels: Tensor, temperature: float = TEMPERATURE) -> Tensor:
    """SupCon L_out written the way the original research code does: every N x N matrix in memory.

    Args:
        features: ``(batch, views, dim)`` L2-normalised projections.
        labels: ``(batch,)`` classes.
    """
    batch, views, _ = features.shape
    n = batch * views
    anchors = torch.cat(torch.unbind(features, dim=1), dim=0)  # view-major (n, dim)
    labels = labels.contiguous().view(-1, 1)
    same = torch.eq(labels, labels.T).float().repeat(views, views)
    not_self = torch.scatter(torch.ones_like(same), 1, torch.arange(n, device=features.device).view(-1, 1), 0)
    positives = same * not_self
    logits = torch.matmul(anchors, anchors.T) / temperature
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    log_prob = logits - torch.log((torch.exp(logits) * not_self).sum(1, keepdim=True))
    mean_log_prob_pos = (positives * log_prob).sum(1) / positives.sum(1)
    return -mean_log_prob_pos.view(views, batch).mean()


def reference_setup(arch: str, width: int, batch: int, device: torch.device, workers: int,
                    images: Tensor, labels: Tensor, seed: int
                    ) -> tuple[Callable[[int], Tensor], torch.nn.Module, Iterator]:
    """A SupContrast-style step: next DataLoader batch, cat the crops, fp32 forward, loss.item()."""
    if device.type == "cuda":  # PyTorch's defaults, plus the cudnn.benchmark the original sets
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    random.seed(seed)  # the main process's draws (workers=0); workers are seeded by the DataLoader
    cfg = Config(arch=arch, width=width, batch_size=batch, device=str(device), epochs=1,
                 progress=False, plots=False)
    model = build_supcon_model(cfg, CHANNELS).to(device)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    dataset = PILImageDataset(images.permute(0, 2, 3, 1).contiguous().numpy(), labels.numpy(),
                              TwoCropTransform(SimAugmentPIL(IMAGE_SIZE, MEAN, STD)))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=True, num_workers=workers,
        pin_memory=device.type == "cuda", drop_last=True,
        generator=torch.Generator().manual_seed(seed))
    batches = iter(loader)  # starts the workers, outside any timed window
    losses: list[float] = []

    def step(i: int) -> Tensor:
        crops, y = next(batches)
        x = torch.cat([crops[0], crops[1]], dim=0).to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        bsz = y.shape[0]
        for group in optimizer.param_groups:
            group["lr"] = LR
        features = model(x)
        f1, f2 = torch.split(features, [bsz, bsz], dim=0)
        loss = reference_supcon_loss(torch.cat([f1.unsqueeze(1), f2.unsqueeze(1)], dim=1), y)
        losses.append(loss.item())  # the original's AverageMeter update: a host sync every step
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    return step, model, batches


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Callable[[int], Tensor], device: torch.device, warmup: int, steps: int) -> float:
    """Seconds for ``steps`` steps after ``warmup`` untimed ones."""
    for i in range(warmup):
        step(i)
    _sync(device)
    t0 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step(i)
    _sync(device)
    return time.perf_counter() - t0


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
    n = sum(1 for w in caught if "synchroniz" in str(w.message).lower())
    return n / steps


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=None, help="comma-separated: resnet18,resnet50,... (both)")
    parser.add_argument("--width", type=int, default=None, help="ResNet width multiplier (1)")
    parser.add_argument("--batch", type=int, default=None, help="images per step, each gives 2 views (1024)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (20)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (5)")
    parser.add_argument("--reference-steps", type=int, default=None,
                        help="timed steps of the reference path (default: max(steps, 4 x workers))")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model in the project's path")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="DataLoader workers of the reference path (default: min(8, cpu count))")
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated: ours,reference")
    parser.add_argument("--dataset-size", type=int, default=50_000, help="synthetic training images")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak for MFU (TFLOP/s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: batch 16, 2 steps, 1 warm-up, resnet18, width 1 (seconds on CPU); "
                             "flags given explicitly still win")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    defaults = QUICK_DEFAULTS if args.quick else FULL_DEFAULTS
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.quick and args.reference_steps is None:
        args.reference_steps = args.steps
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    for p in args.paths:
        if p not in PATHS:
            parser.error(f"--paths takes {', '.join(PATHS)}; got {p!r}")
    for name in ("batch", "steps", "width"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0 or args.workers < 0:
        parser.error("--warmup and --workers must be >= 0")
    if args.reference_steps is None:
        args.reference_steps = max(args.steps, 4 * args.workers)
    return args


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(f"--device {name} asked for, but CUDA is not available")
        if device.index is None:  # torch.cuda.set_device refuses a bare "cuda"
            device = torch.device("cuda", torch.cuda.current_device())
    return device


def run_one(path: str, arch: str, args: argparse.Namespace, device: torch.device, images: Tensor,
            labels: Tensor) -> dict[str, Any]:
    """Times one (model, path) pair; returns its row (``error`` set where it could not run)."""
    row: dict[str, Any] = {"model": arch, "width": args.width, "path": path, "batch": args.batch}
    try:
        if path == "ours":
            step, model, rt = ours_setup(arch, args.width, args.batch, str(device), args.compile, images, labels)
            row.update(amp=str(rt.amp_dtype).replace("torch.", "") if rt.amp_dtype else "fp32",
                       compile=args.compile, channels_last=rt.device.type == "cuda",
                       fused_sgd=rt.device.type == "cuda", augment="kornia on device")
            steps = args.steps
        else:
            step, model, batches = reference_setup(arch, args.width, args.batch, device, args.workers,
                                                    images, labels, args.seed)
            row.update(amp="fp32", compile=False, channels_last=False, fused_sgd=False,
                       augment=f"Pillow, {args.workers} DataLoader workers")
            steps = args.reference_steps
        row["flops_per_image"] = 3 * forward_flops_per_image(model, device, min(args.batch, 8))
        seconds = time_steps(step, device, args.warmup, steps)
        row.update(steps=steps, seconds=seconds, images_per_s=args.batch * steps / seconds)
        row["syncs_per_step"] = count_syncs(step, device, args.warmup + steps)
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
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
    return row


def _fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def markdown_table(rows: list[dict[str, Any]], peak: float | None) -> str:
    lines = ["| model | path | images/s | speedup (a)/(b) | MFU |", "|---|---|---:|---:|---:|"]
    by_model: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_model.setdefault(row["model"], {})[row["path"]] = row
    for row in rows:
        pair = by_model[row["model"]]
        rate = row.get("images_per_s")
        ref = pair.get("reference", {}).get("images_per_s")
        ours = pair.get("ours", {}).get("images_per_s")
        speedup = "-"
        if ours and ref:
            speedup = f"{(ours / ref if row['path'] == 'ours' else 1.0):.2f}x"
        mfu = "-"
        if rate and peak and row.get("flops_per_image"):
            row["mfu"] = row["flops_per_image"] * rate / peak
            mfu = f"{100 * row['mfu']:.1f}%"
        if row["path"] == "ours":
            label = f"(a) ours: {row.get('augment', '')}, {row.get('amp', '')}"
            if row.get("channels_last"):
                label += ", channels_last"
            if row.get("fused_sgd"):
                label += ", fused SGD"
            if row.get("compile"):
                label += ", compile"
        else:
            label = f"(b) reference: {row.get('augment', '')}, fp32 eager"
        shown = row.get("error") or _fmt_rate(rate)
        lines.append(f"| {row['model']} | {label} | {shown} | {speedup} | {mfu} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = _resolve_device(args.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    need = args.batch * (args.warmup + max(args.steps, args.reference_steps) + 2)
    n_images = max(args.dataset_size, need) if not args.quick else need
    images, labels = synthetic_dataset(n_images, args.seed)
    peak, peak_source = peak_flops(device, args.peak_tflops)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} threads)")
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__)] + sys.argv[1:])
    header = {
        "device": device_name,
        "torch": torch.__version__,
        "kornia": _version("kornia"),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "batch": args.batch,
        "views": VIEWS,
        "image_size": IMAGE_SIZE,
        "warmup": args.warmup,
        "steps": args.steps,
        "reference_steps": args.reference_steps,
        "workers": args.workers,
        "dataset_images": n_images,
        "peak_bf16_flops": peak,
        "peak_source": peak_source,
    }
    rows: list[dict[str, Any]] = []
    for arch in args.models:
        for path in args.paths:
            row = run_one(path, arch, args, device, images, labels)
            rows.append(row)
            rate = row.get("images_per_s")
            print(f"# {arch} {path}: {row.get('error') or f'{rate:,.0f} images/s'}", file=sys.stderr, flush=True)
    table = markdown_table(rows, peak)
    print(f"SupCon pretraining throughput: {args.batch} images x {VIEWS} views of {IMAGE_SIZE}x{IMAGE_SIZE} "
          f"RGB, CIFAR-stem ResNet (width {args.width}) + MLP head")
    print(f"- device: {device_name}")
    print(f"- torch {header['torch']}, kornia {header['kornia']}, {header['date']}")
    print(f"- command: `{command}`")
    print(f"- timing: warm-up steps {args.warmup}, then timed steps {args.steps} (reference: "
          f"{args.reference_steps}); reference DataLoader workers: {args.workers}")
    peak_text = f"{peak / 1e12:.0f} TFLOP/s ({peak_source})" if peak else peak_source
    print(f"- MFU: 3 x forward FLOPs per image x images/s / dense bf16 peak = {peak_text}")
    print()
    print(table)
    syncs = [f"{r['model']} {r['path']}: {r['syncs_per_step']:g}" for r in rows
             if r.get("syncs_per_step") is not None]
    if syncs:
        print()
        print("host-device syncs per step (untimed probe): " + "; ".join(syncs))
    sys.stdout.flush()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**header, "rows": rows}, indent=2, default=str))
    return 1 if any(row.get("failed") for row in rows) else 0


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except Exception:  # pragma: no cover - informational only
        return "?"


if __name__ == "__main__":
    raise SystemExit(main())
