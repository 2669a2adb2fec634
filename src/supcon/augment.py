"""Batched, per-sample data augmentation that runs on the training device.

Every pipeline takes a whole batch ``(B, C, H, W)`` of float images in ``[0, 1]`` and draws independent random
parameters for each image, so ``n`` views of a batch come from one call over ``B * n`` images
(:func:`make_views`). The same code runs on CPU and CUDA; all randomness comes from the global torch RNG, so
``torch.manual_seed`` makes a CPU run reproducible.

The pipelines follow Khosla et al., "Supervised Contrastive Learning" (NeurIPS 2020, arXiv:2004.11362), which
compares AutoAugment, RandAugment, SimAugment (SimCLR's crop + flip + colour distortion) and Stacked RandAugment:

- ``"sim"``: random resized crop, horizontal flip, colour jitter (0.4, 0.4, 0.4, 0.1, p=0.8), grayscale (p=0.2)
  and optionally Gaussian blur.
- ``"autoaugment"``: crop + flip + AutoAugment with the CIFAR-10 policy, one sub-policy drawn per image.
- ``"randaugment"``: crop + flip + RandAugment (n=2, m=9), operations drawn per image.
- ``"stacked"``: crop + flip + RandAugment + SimAugment's colour distortion + Gaussian blur.
- ``"none"``: a deterministic resize to ``image_size`` (the identity when the size already matches).

SimAugment's crop, flip, colour jitter and grayscale are :mod:`supcon.simaugment`'s batched ops (torchvision's
semantics per image, a few milliseconds per batch on a CPU); AutoAugment, RandAugment and the blur are kornia 0.9
augmentations. kornia's ``AutoAugment``/``RandAugment`` draw one operation path per call for the whole batch;
:class:`PerSamplePolicy` redraws it per image by routing each image to its own branch.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Sequence

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from kornia.augmentation.auto import AutoAugment, RandAugment
from kornia.augmentation.auto.autoaugment.autoaugment import cifar10_policy
from kornia.augmentation.auto.rand_augment.rand_augment import default_policy as randaugment_policy
from torch import Tensor, nn

from supcon.simaugment import ColorJitter, RandomGrayscale, RandomResizedCropFlip

__all__ = [
    "AUGMENTATIONS",
    "AugmentationPipeline",
    "Normalize",
    "PerSamplePolicy",
    "build_augmentation",
    "make_views",
    "to_float_images",
]

logger = logging.getLogger(__name__)

AUGMENTATIONS: tuple[str, ...] = ("sim", "autoaugment", "randaugment", "stacked", "none")

#: SimCLR / SupCon colour-jitter strengths (brightness, contrast, saturation, hue) at ``jitter_strength=1``.
JITTER_FACTORS: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
#: RandAugment defaults used by the paper's recipes: two operations at magnitude 9 of 30.
RANDAUGMENT_N: int = 2
RANDAUGMENT_M: int = 9


def to_float_images(images: Tensor) -> Tensor:
    """Convert images to floating point in ``[0, 1]``.

    Args:
        images: any shape, usually ``(B, C, H, W)``; ``uint8`` in ``0..255`` or floating point in ``[0, 1]``.

    Returns:
        ``uint8`` input as ``float32`` divided by 255; floating-point input unchanged (same tensor). The range
        of floating-point input is not checked.

    Raises:
        ValueError: if ``images`` has any other dtype (e.g. ``int64`` or ``bool``), whose scale is ambiguous.
    """
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    if images.is_floating_point():
        return images
    raise ValueError(f"images must be uint8 (0..255) or floating point (0..1), got dtype {images.dtype}")


class Normalize(nn.Module):
    """Per-channel standardisation ``(x - mean) / std``.

    Args:
        mean: one value per channel.
        std: one strictly positive value per channel, as many as ``mean``.

    Raises:
        ValueError: if ``mean`` is empty, the lengths differ, or any ``std`` is not positive.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        mean_t = torch.as_tensor(list(mean), dtype=torch.float32)
        std_t = torch.as_tensor(list(std), dtype=torch.float32)
        if mean_t.ndim != 1 or mean_t.numel() == 0:
            raise ValueError(f"mean must be a non-empty sequence of floats, got {list(mean)!r}")
        if std_t.shape != mean_t.shape:
            raise ValueError(f"std has {std_t.numel()} entries, mean has {mean_t.numel()}; expected one per channel")
        if not bool((std_t > 0).all()):
            raise ValueError(f"std must be > 0 in every channel, got {std_t.tolist()}")
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1))
        self.register_buffer("std", std_t.view(1, -1, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        """Standardise a batch.

        Args:
            images: ``(B, C, H, W)`` floating point, ``C`` equal to ``len(mean)``.

        Returns:
            ``(B, C, H, W)`` standardised images, in the dtype of ``images``.

        Raises:
            ValueError: if ``images`` is not 4-D or has the wrong number of channels.
        """
        if images.ndim != 4 or images.shape[1] != self.mean.shape[1]:
            raise ValueError(
                f"images must have shape (B, {self.mean.shape[1]}, H, W), got {tuple(images.shape)}"
            )
        mean = self.mean.to(images.dtype)
        std = self.std.to(images.dtype)
        return (images - mean) / std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class PerSamplePolicy(nn.Module):
    """Apply ``steps`` branches drawn per image, without replacement, from a list of branches.

    Image ``i`` gets its own random choice of ``steps`` distinct branches, applied in the order drawn. Images that
    drew the same branch at a step are augmented together in one batched call (each branch draws its own per-image
    parameters), so the cost is at most ``steps * len(branches)`` calls per batch.

    Args:
        branches: modules mapping ``(b, C, H, W)`` to ``(b, C, H, W)``.
        steps: how many distinct branches each image goes through, ``1 <= steps <= len(branches)``.

    Raises:
        ValueError: if ``branches`` is empty or ``steps`` is out of range.
    """

    def __init__(self, branches: Sequence[nn.Module], steps: int = 1) -> None:
        super().__init__()
        if len(branches) == 0:
            raise ValueError("branches must hold at least one module, got none")
        if not 1 <= steps <= len(branches):
            raise ValueError(f"steps must be in [1, {len(branches)}] (the number of branches), got {steps}")
        self.branches = nn.ModuleList(branches)
        self.steps = steps

    def forward(self, images: Tensor) -> Tensor:
        """Augment each image with its own branches.

        Args:
            images: ``(B, C, H, W)`` float images.

        Returns:
            ``(B, C, H, W)`` augmented images.
        """
        batch = images.shape[0]
        if batch == 0:
            return images
        # Drawn on the CPU from the global RNG: grouping needs host indices anyway, and no device sync is needed.
        choice = torch.rand(batch, len(self.branches)).argsort(dim=1)[:, : self.steps]
        out = images
        for step in range(self.steps):
            column = choice[:, step]
            result = out.clone()
            for branch_index in torch.unique(column).tolist():
                rows = (column == branch_index).nonzero().squeeze(1).to(images.device)
                augmented = self.branches[branch_index](out.index_select(0, rows))
                result.index_copy_(0, rows, augmented.to(result.dtype))
            out = result
        return out

    def extra_repr(self) -> str:
        return f"steps={self.steps}"


class _LiftToRGB(nn.Module):
    """Run an RGB-only augmentation on 1-channel images: repeat to 3 channels, augment, average back.

    Args:
        inner: module mapping ``(B, 3, H, W)`` to ``(B, 3, H', W')``.
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, images: Tensor) -> Tensor:
        if images.shape[1] != 1:
            return self.inner(images)
        return self.inner(images.expand(-1, 3, -1, -1).contiguous()).mean(dim=1, keepdim=True)


class _Resize(nn.Module):
    """Deterministic bilinear (antialiased) resize to ``(size, size)``; the identity when sizes already match."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, images: Tensor) -> Tensor:
        if images.shape[-2:] == (self.size, self.size):
            return images
        return F.interpolate(
            images, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True
        )

    def extra_repr(self) -> str:
        return f"size={self.size}"


class AugmentationPipeline(nn.Module):
    """A named augmentation pipeline: checks its input, runs ``steps``, clamps to ``[0, 1]``.

    Built by :func:`build_augmentation`; use that instead of constructing one directly.

    Args:
        name: one of :data:`AUGMENTATIONS`, kept for ``repr`` and logging.
        steps: the augmentation modules, applied in order.
        image_size: output side length ``S``.
        channels: expected input channel count (1 or 3).
    """

    def __init__(self, name: str, steps: nn.Sequential, image_size: int, channels: int) -> None:
        super().__init__()
        self.name = name
        self.steps = steps
        self.image_size = image_size
        self.channels = channels

    def forward(self, images: Tensor) -> Tensor:
        """Augment a batch, each image with its own random parameters.

        Args:
            images: ``(B, C, H, W)`` with ``C == channels``; float in ``[0, 1]`` or ``uint8``; any memory format.

        Returns:
            ``(B, C, S, S)`` float images in ``[0, 1]``, ``S == image_size``, contiguous.

        Raises:
            ValueError: if ``images`` does not have shape ``(B, channels, H, W)``.
        """
        if images.ndim != 4 or images.shape[1] != self.channels:
            raise ValueError(
                f"images must have shape (B, {self.channels}, H, W) for this '{self.name}' pipeline, "
                f"got {tuple(images.shape)}"
            )
        x = to_float_images(images).contiguous()
        x = self.steps(x)
        return x.clamp(0.0, 1.0).contiguous()

    def extra_repr(self) -> str:
        return f"name={self.name!r}, image_size={self.image_size}, channels={self.channels}"


def _blur_kernel_size(image_size: int) -> int:
    """Odd Gaussian-blur kernel of about 10% of the image side, at least 3 (SimCLR: 23 at 224)."""
    return max(3, int(0.1 * image_size) // 2 * 2 + 1)


def _crop_and_flip(image_size: int, crop_scale: tuple[float, float], flip: bool) -> list[nn.Module]:
    # Crop, resize and flip as one separable resampling per image (two batched matrix products).
    return [RandomResizedCropFlip(image_size, scale=crop_scale, flip_p=0.5 if flip else 0.0)]


def _colour_distortion(channels: int, jitter_strength: float) -> list[nn.Module]:
    # torchvision's ColorJitter formulas; the p=0.8 gate, the factors and the order are drawn per image.
    brightness, contrast, saturation, hue = (jitter_strength * f for f in JITTER_FACTORS)
    if channels == 1:
        if brightness == 0 and contrast == 0:
            return []
        return [ColorJitter(brightness, contrast, 0.0, 0.0, p=0.8, channels=1)]
    return [ColorJitter(brightness, contrast, saturation, hue, p=0.8), RandomGrayscale(p=0.2)]


def _gaussian_blur(image_size: int) -> nn.Module:
    kernel = _blur_kernel_size(image_size)
    return K.RandomGaussianBlur((kernel, kernel), sigma=(0.1, 2.0), p=0.5)


def _autoaugment() -> nn.Module:
    branches = [AutoAugment(policy=[list(subpolicy)]) for subpolicy in cifar10_policy]
    return _LiftToRGB(PerSamplePolicy(branches, steps=1))


def _randaugment(n: int = RANDAUGMENT_N, m: int = RANDAUGMENT_M) -> nn.Module:
    # One single-operation RandAugment per candidate keeps kornia's magnitude mapping for ``m``.
    branches = [RandAugment(n=1, m=m, policy=[list(operation)]) for operation in randaugment_policy]
    return _LiftToRGB(PerSamplePolicy(branches, steps=n))


def build_augmentation(
    name: str,
    image_size: int,
    channels: int,
    *,
    crop_scale: tuple[float, float] = (0.2, 1.0),
    blur: bool = False,
    jitter_strength: float = 1.0,
    flip: bool = True,
) -> AugmentationPipeline:
    """Build a batched augmentation pipeline by name.

    The returned module maps float images ``(B, C, H, W)`` in ``[0, 1]`` (``uint8`` is also accepted) to
    ``(B, C, image_size, image_size)`` float images clamped to ``[0, 1]``, with independent random parameters per
    image. See the module docstring for what each name does. For 1-channel inputs the hue, saturation and
    grayscale steps are skipped and AutoAugment/RandAugment run on the image repeated to 3 channels, averaged back.

    Args:
        name: one of :data:`AUGMENTATIONS`: ``"sim"``, ``"autoaugment"``, ``"randaugment"``, ``"stacked"``,
            ``"none"``.
        image_size: output side length ``S >= 1``.
        channels: input channel count, 1 or 3.
        crop_scale: ``(low, high)`` area fraction for the random resized crop, ``0 < low <= high <= 1``.
        blur: add Gaussian blur (kernel about 10% of ``image_size``, sigma 0.1-2.0, p=0.5) to ``"sim"``.
            ``"stacked"`` always blurs; the other pipelines ignore it.
        jitter_strength: multiplies the colour-jitter factors 0.4/0.4/0.4/0.1 (``"sim"``, ``"stacked"``);
            ``0 <= jitter_strength <= 5`` (hue must stay <= 0.5).
        flip: random horizontal flips (p=0.5) in the cropping pipelines; switch off for digits and text.

    Returns:
        The pipeline, an :class:`AugmentationPipeline`.

    Raises:
        ValueError: for an unknown ``name`` or an invalid ``image_size``, ``channels``, ``crop_scale`` or
            ``jitter_strength``.
    """
    if name not in AUGMENTATIONS:
        raise ValueError(f"name must be one of {', '.join(AUGMENTATIONS)}; got {name!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, numbers.Integral) or image_size < 1:
        raise ValueError(f"image_size must be an integer >= 1, got {image_size!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    if len(crop_scale) != 2 or not 0 < crop_scale[0] <= crop_scale[1] <= 1:
        raise ValueError(f"crop_scale must be (low, high) with 0 < low <= high <= 1, got {tuple(crop_scale)!r}")
    if not 0 <= jitter_strength <= 5:
        raise ValueError(f"jitter_strength must be in [0, 5] (hue 0.1 * strength <= 0.5), got {jitter_strength!r}")
    crop_scale = (float(crop_scale[0]), float(crop_scale[1]))
    image_size = int(image_size)

    steps: list[nn.Module]
    if name == "none":
        steps = [_Resize(image_size)]
    elif name == "sim":
        steps = _crop_and_flip(image_size, crop_scale, flip) + _colour_distortion(channels, jitter_strength)
        if blur:
            steps.append(_gaussian_blur(image_size))
    elif name == "autoaugment":
        steps = _crop_and_flip(image_size, crop_scale, flip) + [_autoaugment()]
    elif name == "randaugment":
        steps = _crop_and_flip(image_size, crop_scale, flip) + [_randaugment()]
    else:  # "stacked"
        steps = (
            _crop_and_flip(image_size, crop_scale, flip)
            + [_randaugment()]
            + _colour_distortion(channels, jitter_strength)
            + [_gaussian_blur(image_size)]
        )
    logger.debug("built %s augmentation: image_size=%d channels=%d", name, image_size, channels)
    return AugmentationPipeline(name, nn.Sequential(*steps), image_size, channels)


def make_views(augment: nn.Module, images: Tensor, n_views: int) -> Tensor:
    """Draw ``n_views`` independent augmentations of every image in one batched call.

    Args:
        augment: maps ``(N, C, H, W)`` float images in ``[0, 1]`` to ``(N, C, S, S)``, per-image random
            (e.g. from :func:`build_augmentation`).
        images: ``(B, C, H, W)``, ``uint8`` in ``0..255`` or float in ``[0, 1]``, on any device.
        n_views: views per image, ``>= 1``.

    Returns:
        ``(B, n_views, C, S, S)`` float32 in the range ``augment`` produces; ``[:, v]`` is view ``v``.

    Raises:
        ValueError: if ``n_views < 1``, ``images`` is not 4-D or of a supported dtype, or ``augment`` returns
            the wrong batch size or rank.
    """
    if isinstance(n_views, bool) or not isinstance(n_views, numbers.Integral) or n_views < 1:
        raise ValueError(f"n_views must be an integer >= 1, got {n_views!r}")
    if images.ndim != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    n_views = int(n_views)
    batch = images.shape[0]
    # Rows b*n_views .. b*n_views + n_views - 1 are the views of image b (repeated before the
    # conversion to float: a quarter of the bytes for uint8 input).
    out = augment(to_float_images(images.repeat_interleave(n_views, dim=0)).to(torch.float32))
    if out.ndim != 4 or out.shape[0] != batch * n_views:
        raise ValueError(
            f"augment must return (B * n_views, C, S, S) = ({batch * n_views}, C, S, S), got {tuple(out.shape)}"
        )
    return out.to(torch.float32).reshape(batch, n_views, *out.shape[1:])
