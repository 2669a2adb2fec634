"""SimAugment's random operations as batched tensor ops with per-image parameters, fast on a CPU.

The augmentation of Chen et al. (SimCLR) that Khosla et al. ("Supervised Contrastive Learning",
arXiv:2004.11362) call SimAugment, with torchvision's semantics, per image:

- :class:`RandomResizedCropFlip`: torchvision's ``RandomResizedCrop`` (area fraction in ``scale``,
  aspect ratio log-uniform in ``ratio``, 10 tries, then a centre crop of the clamped ratio),
  resized with antialiased bilinear weights (``antialias=True``), and a horizontal flip with
  probability ``flip_p``. Crop, resize and flip are one separable resampling: two small per-image
  matrices ``(S, H)`` and ``(S, W)`` and two batched matrix products, no intermediate crops.
- :class:`ColorJitter`: ``RandomApply([ColorJitter(b, c, s, h)], p)`` with torchvision's formulas
  (brightness scales, contrast blends with the grayscale mean, saturation blends with the grayscale
  image, each clamped to ``[0, 1]``; hue rotates in HSV space), the four in an order drawn per image.
- :class:`RandomGrayscale`: ITU-R 601 luma (0.2989, 0.587, 0.114) in every channel with probability ``p``.

Every module draws all its parameters with one ``torch.rand`` call on the CPU from the global RNG
(``torch.manual_seed`` reproduces a batch on any device), and works on any subset of images through
index lists computed on the host, so a CUDA run needs no host-device synchronisation.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["RandomResizedCropFlip", "ColorJitter", "RandomGrayscale", "crop_boxes", "resize_weights",
           "LUMA"]

#: rgb_to_grayscale weights (torchvision, ITU-R 601-2 luma).
LUMA: tuple[float, float, float] = (0.2989, 0.587, 0.114)
#: torchvision's RandomResizedCrop tries this many (scale, ratio) draws before its centre-crop fallback.
CROP_TRIES: int = 10


def crop_boxes(u: Tensor, height: int, width: int, scale: tuple[float, float],
               ratio: tuple[float, float]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """torchvision's RandomResizedCrop boxes from uniform draws, vectorised over images.

    Args:
        u: ``(n, CROP_TRIES, 4)`` uniform ``[0, 1)`` draws: area fraction, log aspect ratio, top, left.
        height, width: input image size.
        scale: ``(low, high)`` fraction of the image area.
        ratio: ``(low, high)`` aspect ratio ``w / h``, drawn log-uniformly.

    Returns:
        ``(top, left, h, w)``, each ``(n,)`` int64: the first of the tries that fits, else the
        centre crop of the whole image with its aspect ratio clamped to ``ratio``.
    """
    area = float(height * width)
    target = area * (scale[0] + (scale[1] - scale[0]) * u[..., 0].double())
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[..., 1].double())
    w = torch.round(torch.sqrt(target * aspect)).long()
    h = torch.round(torch.sqrt(target / aspect)).long()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # argmax returns the first maximum
    found = fits.any(dim=1)
    w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
    uy = u[..., 2].gather(1, first).squeeze(1).double()
    ux = u[..., 3].gather(1, first).squeeze(1).double()
    top = torch.minimum((uy * (height - h + 1)).floor().long(), height - h)
    left = torch.minimum((ux * (width - w + 1)).floor().long(), width - w)
    # The fallback: the whole image, its aspect ratio clamped into ``ratio``.
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fw, fh = int(round(height * ratio[1])), height
    else:
        fw, fh = width, height
    fill = lambda value, fallback: torch.where(found, value, torch.full_like(value, fallback))  # noqa: E731
    return fill(top, (height - fh) // 2), fill(left, (width - fw) // 2), fill(h, fh), fill(w, fw)


def resize_weights(start: Tensor, length: Tensor, in_size: int, out_size: int) -> Tensor:
    """Per-image resampling matrices of the crop ``[start, start + length)`` to ``out_size`` pixels.

    Antialiased bilinear (a triangle filter widened by the downscale factor, normalised), the weights
    of ``F.interpolate(crop, mode="bilinear", antialias=True, align_corners=False)``: plain
    bilinear with edge clamping when upscaling.

    Args:
        start, length: ``(n,)`` crop offsets and lengths in input pixels.

    Returns:
        ``(n, out_size, in_size)`` float32; row ``i`` of image ``k`` holds the weights of output pixel ``i``.
    """
    start, length = start.to(torch.float32), length.to(torch.float32)
    step = length / out_size
    support = step.clamp(min=1.0)
    centre = start[:, None] + (torch.arange(out_size, dtype=torch.float32, device=start.device) + 0.5) * step[:, None]
    pixel = torch.arange(in_size, dtype=torch.float32, device=start.device) + 0.5
    weights = (1 - ((pixel - centre[:, :, None]) / support[:, None, None]).abs()).clamp_(min=0)
    inside = (pixel > start[:, None, None]) & (pixel < (start + length)[:, None, None])
    weights = weights * inside
    return weights / weights.sum(dim=-1, keepdim=True)


class RandomResizedCropFlip(nn.Module):
    """Random resized crop to ``size x size`` and a random horizontal flip, one resampling per image.

    Args:
        size: output side ``S``.
        scale: ``(low, high)`` area fraction, ``0 < low <= high <= 1``.
        ratio: ``(low, high)`` aspect ratio ``w / h``.
        flip_p: probability of a horizontal flip (0 for none).

    Shapes:
        ``forward``: ``(B, C, H, W)`` float -> ``(B, C, S, S)`` float, contiguous.
    """

    def __init__(self, size: int, scale: tuple[float, float] = (0.2, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), flip_p: float = 0.5) -> None:
        super().__init__()
        self.size, self.scale, self.ratio, self.flip_p = size, tuple(scale), tuple(ratio), flip_p

    def forward(self, images: Tensor) -> Tensor:
        n, _, height, width = images.shape
        u = torch.rand(n, CROP_TRIES * 4 + 1)
        top, left, h, w = crop_boxes(u[:, :-1].view(n, CROP_TRIES, 4), height, width, self.scale, self.ratio)
        device = images.device
        rows = resize_weights(top, h, height, self.size).to(device, non_blocking=True)
        cols = resize_weights(left, w, width, self.size)
        flip = u[:, -1] < self.flip_p
        cols = torch.where(flip[:, None, None], cols.flip(1), cols).to(device, non_blocking=True)
        x = images.to(torch.float32)
        # out[b, c] = rows[b] @ x[b, c] @ cols[b].T (einsum batches it better than broadcast matmul).
        tmp = torch.einsum("bsh,bchw->bcsw", rows, x)
        return torch.einsum("bcsw,btw->bcst", tmp, cols).to(images.dtype)

    def extra_repr(self) -> str:
        return f"size={self.size}, scale={self.scale}, ratio={self.ratio}, flip_p={self.flip_p}"


def _gray(images: Tensor) -> Tensor:
    """``(b, 3, H, W)`` -> ``(b, 1, H, W)`` luma."""
    r, g, b = images.unbind(1)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)


def _blend_step(x: Tensor, op: Tensor, factors: Tensor) -> Tensor:
    """One position of the jitter order for brightness, contrast and saturation at once, in place.

    Each image gets ``clamp(a * x + (1 - a) * t)`` with its own op's factor ``a`` and target ``t``:
    0 (brightness), the mean luma (contrast) or the luma image (saturation); images whose op here is
    another one (hue) get ``a = 1``, ``t = 0``: exactly unchanged.

    Args:
        x: ``(m, C, H, W)`` in ``[0, 1]``.
        op: ``(m,)`` int64, the op index per image (:data:`_BRIGHTNESS` ...).
        factors: ``(m, 4)`` per-image factors.
    """
    m = x.shape[0]
    a = torch.ones(m, dtype=x.dtype, device=x.device)
    for k in (_BRIGHTNESS, _CONTRAST, _SATURATION):
        a = torch.where(op == k, factors[:, k], a)
    weight = (1 - a).view(-1, 1, 1, 1)
    means = x.mean(dim=(2, 3))  # (m, C)
    mean = means @ x.new_tensor(LUMA) if x.shape[1] == 3 else means[:, 0]
    contrast = ((op == _CONTRAST).to(x.dtype) * mean).view(-1, 1, 1, 1)
    if x.shape[1] == 3:
        gray = _gray(x).mul_((op == _SATURATION).to(x.dtype).view(-1, 1, 1, 1)).add_(contrast)
    else:
        gray = x.mul((op == _SATURATION).to(x.dtype).view(-1, 1, 1, 1)).add_(contrast)
    return x.mul_(a.view(-1, 1, 1, 1)).addcmul_(gray, weight).clamp_(0, 1)


#: (centre, sign, bias) per channel: ramp_R = 2 - |h - 3|, ramp_G = |h - 2| - 1, ramp_B = |h - 4| - 1.
_HUE_RAMPS = ((3.0, 2.0, 4.0), (-1.0, 1.0, 1.0), (2.0, -1.0, -1.0))


def _hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the HSV hue by ``shift`` turns (``(m,)``, ``|shift| <= 0.5``) of ``(m, 3, H, W)`` in [0, 1].

    Value V (max) and chroma C (max - min) stay; with the hue ``h`` in sixths of a turn, in
    ``[0, 6)``, each channel is ``V - C * clamp(ramp(h), 0, 1)`` (the usual HSV -> RGB formula).
    """
    r, g, b = x.unbind(1)
    value = x.amax(dim=1)
    chroma = value - x.amin(dim=1)
    sector = torch.where(value == r, g - b, torch.where(value == g, (b - r).add_(chroma, alpha=2),
                                                       (r - g).add_(chroma, alpha=4)))
    # chroma 0: grey pixel, sector 0 (any hue does); the clamp only avoids 0 / 0.
    h = sector.div_(chroma.clamp(min=1e-12)).add_((6 * shift).view(-1, 1, 1))  # (-4, 8)
    h = torch.remainder(h, 6).unsqueeze(1)
    centre, sign, bias = (x.new_tensor(v).view(1, 3, 1, 1) for v in _HUE_RAMPS)
    ramp = (h - centre).abs_().mul_(sign).add_(bias).clamp_(0, 1)
    return ramp.mul_(chroma.unsqueeze(1).neg()).add_(value.unsqueeze(1))


_BRIGHTNESS, _CONTRAST, _SATURATION, _HUE = range(4)


class ColorJitter(nn.Module):
    """torchvision's ``RandomApply([ColorJitter(brightness, contrast, saturation, hue)], p)``, per image.

    Brightness, contrast and saturation factors are uniform in ``[max(0, 1 - v), 1 + v]``, the hue
    shift uniform in ``[-hue, hue]`` turns; an operation with strength 0 is skipped, and the others
    run in an order drawn per image. Saturation and hue need 3 channels.

    Raises:
        ValueError: a negative strength, ``hue > 0.5``, or saturation / hue for 1-channel images.
    """

    def __init__(self, brightness: float, contrast: float, saturation: float, hue: float,
                 p: float = 0.8, channels: int = 3) -> None:
        super().__init__()
        if min(brightness, contrast, saturation, hue) < 0 or hue > 0.5:
            raise ValueError(f"jitter strengths must be >= 0 and hue <= 0.5, got "
                             f"{(brightness, contrast, saturation, hue)}")
        if channels != 3 and (saturation or hue):
            raise ValueError(f"saturation and hue need 3 channels, got channels={channels}")
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue
        self.p = p
        self.enabled = [k for k, v in enumerate((brightness, contrast, saturation, hue)) if v > 0]

    def factors(self, u: Tensor) -> Tensor:
        """``(n, 4)`` uniform draws -> (brightness, contrast, saturation, hue shift) per image."""
        out = torch.empty_like(u)
        for k, v in enumerate((self.brightness, self.contrast, self.saturation)):
            lo = max(0.0, 1 - v)
            out[:, k] = lo + (1 + v - lo) * u[:, k]
        out[:, 3] = self.hue * (2 * u[:, 3] - 1)
        return out

    def draw(self, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """One ``torch.rand(n, 9)`` -> (jittered image indices ``(m,)``, their factors ``(m, 4)``,
        their op order ``(m, len(enabled))``: op index per position)."""
        u = torch.rand(n, 9)  # gate, four factors, four order keys
        chosen = (u[:, 0] < self.p).nonzero().squeeze(1)
        factors = self.factors(u[chosen, 1:5])
        keys = u[chosen, 5:][:, self.enabled]
        order = torch.tensor(self.enabled, dtype=torch.long)[keys.argsort(dim=1)]
        return chosen, factors, order

    def forward(self, images: Tensor) -> Tensor:
        chosen, factors, order = self.draw(images.shape[0])
        if not self.enabled or chosen.numel() == 0:
            return images
        device = images.device
        chosen_d = chosen.to(device, non_blocking=True)
        x = images.index_select(0, chosen_d)
        factors_d, order_d = factors.to(device, non_blocking=True), order.to(device, non_blocking=True)
        blends = [k for k in self.enabled if k != _HUE]
        for position in range(order.shape[1]):
            if blends:
                x = _blend_step(x, order_d[:, position], factors_d)
            if _HUE in self.enabled:
                rows = (order[:, position] == _HUE).nonzero().squeeze(1)
                if rows.numel():
                    rows_d = rows.to(device, non_blocking=True)
                    x.index_copy_(0, rows_d, _hue(x.index_select(0, rows_d), factors_d[rows_d, _HUE]))
        return images.index_copy(0, chosen_d, x)

    def extra_repr(self) -> str:
        return (f"brightness={self.brightness}, contrast={self.contrast}, saturation={self.saturation}, "
                f"hue={self.hue}, p={self.p}")


class RandomGrayscale(nn.Module):
    """Replace an image by its luma in all 3 channels with probability ``p``."""

    def __init__(self, p: float = 0.2) -> None:
        super().__init__()
        self.p = p

    def forward(self, images: Tensor) -> Tensor:
        chosen = (torch.rand(images.shape[0]) < self.p).nonzero().squeeze(1).to(images.device, non_blocking=True)
        gray = _gray(images.index_select(0, chosen)).expand(-1, 3, -1, -1)
        return images.index_copy(0, chosen, gray.contiguous())

    def extra_repr(self) -> str:
        return f"p={self.p}"
