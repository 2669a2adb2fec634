"""The reference-style path of benchmarks/throughput.py: Pillow transforms in DataLoader workers.

The style of the original PyTorch SupContrast code (HobbitLong/SupContrast, ``main_supcon.py``): a
``torch.utils.data.Dataset`` of Pillow images, a two-crop transform run on the CPU in ``DataLoader``
workers (RandomResizedCrop 0.2-1, horizontal flip, colour jitter 0.4/0.4/0.4/0.1 with p=0.8,
grayscale p=0.2, ToTensor + Normalize), written here with Pillow and NumPy only (no torchvision);
pinned batches copied with ``non_blocking`` on CUDA; fp32, eager, the default memory format,
non-fused SGD (PyTorch's default implementation), the all-matrices loss of that code and its
``loss.item()`` every step. Random draws use Python's ``random`` (cheaper than torchvision's
``torch.rand`` per parameter), so this baseline is, if anything, a little fast.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageEnhance
from torch import Tensor

from throughput_recipe import (CHANNELS, IMAGE_SIZE, LR, MEAN, MOMENTUM, STD, TEMPERATURE, WEIGHT_DECAY,
                               PhaseTimer)

from supcon.config import Config
from supcon.train.methods.pretrain import build_supcon_model

__all__ = ["RandomResizedCropPIL", "ColorJitterPIL", "SimAugmentPIL", "TwoCropTransform", "PILImageDataset",
           "reference_supcon_loss", "reference_setup"]


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
                    images: Tensor, labels: Tensor, seed: int, timer: PhaseTimer
                    ) -> tuple[Callable[[int], Tensor], torch.nn.Module, Iterator]:
    """A SupContrast-style step: next DataLoader batch, cat the crops, fp32 forward, loss.item().

    ``timer`` records the phases: data (waiting for the workers' batch, the concatenation and the
    copy), forward, loss (with its ``item()``), backward (with ``zero_grad``), optimizer.
    """
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
        t0 = timer.now()
        crops, y = next(batches)
        x = torch.cat([crops[0], crops[1]], dim=0).to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        bsz = y.shape[0]
        for group in optimizer.param_groups:
            group["lr"] = LR
        t1 = timer.now()
        features = model(x)
        t2 = timer.now()
        f1, f2 = torch.split(features, [bsz, bsz], dim=0)
        loss = reference_supcon_loss(torch.cat([f1.unsqueeze(1), f2.unsqueeze(1)], dim=1), y)
        losses.append(loss.item())  # the original's AverageMeter update: a host sync every step
        t3 = timer.now()
        optimizer.zero_grad()
        loss.backward()
        t4 = timer.now()
        optimizer.step()
        t5 = timer.now()
        for phase, seconds in (("data", t1 - t0), ("forward", t2 - t1), ("loss", t3 - t2),
                               ("backward", t4 - t3), ("optimizer", t5 - t4), ("step", t5 - t0)):
            timer.add(phase, seconds)
        timer.steps += timer.recording
        return loss

    return step, model, batches
