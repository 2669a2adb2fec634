"""Shared inputs of the corruption tests: names, layouts, a natural-ish scene, cached outputs."""

from __future__ import annotations

import functools

import numpy as np
import torch
from PIL import Image

from supcon.corruptions import CORRUPTIONS, EXTRA_CORRUPTIONS, corrupt

ALL = CORRUPTIONS + EXTRA_CORRUPTIONS
RANDOM = {"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "glass_blur", "motion_blur",
          "snow", "frost", "fog", "elastic_transform", "spatter"}
LAYOUTS = {"rgb32": (4, 3, 32, 32), "grey28": (2, 1, 28, 28)}
DTYPES = {"float32": torch.float32, "uint8": torch.uint8}


def scene(batch: int, channels: int, height: int, width: int) -> torch.Tensor:
    """Natural-ish float images in [0, 1]: colour gradients, a disk, a bar and a little texture."""
    gen = torch.Generator().manual_seed(1234)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    out = torch.stack([0.2 + 0.6 * xx, 0.3 + 0.5 * yy, 0.8 - 0.5 * xx * yy])[:channels]
    out = out.expand(batch, channels, height, width).clone()
    for i in range(batch):
        cy, cx = (0.3 + 0.4 * torch.rand(2, generator=gen)).tolist()
        colour = torch.rand(3, generator=gen)[:channels].view(channels, 1, 1)
        out[i] = torch.where((yy - cy) ** 2 + (xx - cx) ** 2 < 0.04, colour, out[i])
        out[i, :, height // 8: height // 3, width // 2: width - width // 8] = 1.0 - colour
    return (out + 0.06 * torch.rand(batch, channels, height, width, generator=gen)).clamp(0, 1)


def clean_images(layout: str, dtype: str) -> torch.Tensor:
    images = scene(*LAYOUTS[layout])
    return torch.round(images * 255).to(torch.uint8) if dtype == "uint8" else images


@functools.lru_cache(maxsize=None)
def outputs(name: str, layout: str, dtype: str) -> tuple[torch.Tensor, ...]:
    """The corrupted clean_images at severities 1..5, each with a generator seeded 0."""
    images = clean_images(layout, dtype)
    return tuple(corrupt(images, name, s, generator=torch.Generator().manual_seed(0)) for s in range(1, 6))


def mean_abs_diffs(name: str, layout: str) -> list[float]:
    clean = clean_images(layout, "float32")
    return [(out - clean).abs().mean().item() for out in outputs(name, layout, "float32")]


def to_unit(images: torch.Tensor) -> torch.Tensor:
    return images.double() / 255 if images.dtype == torch.uint8 else images.double()


def pil_roundtrip(images: torch.Tensor, fn) -> torch.Tensor:
    result = []
    for image in images:
        array = image.permute(1, 2, 0).numpy()
        pil = Image.fromarray(array[..., 0] if image.shape[0] == 1 else array)
        out = np.asarray(fn(pil))
        result.append(torch.from_numpy(out.reshape(*out.shape[:2], -1).copy()).permute(2, 0, 1))
    return torch.stack(result)
