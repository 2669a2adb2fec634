"""A dataset adapted to an encoder trained on other images: the transfer rule.

An encoder takes the images it was trained on: ``C`` channels of side ``S``, normalised with its training
split's per-channel mean and standard deviation (all three are in its checkpoint, see
:class:`EncoderInput`). Probing it on another dataset (``supcon linear --checkpoint C --dataset SPEC``,
``--finetune``, ``supcon knn``) feeds it that dataset's images under one rule, the one ``supcon embed``
and ``supcon predict`` also use:

* **size**: every split is loaded at the encoder's side, ``load_dataset(spec, image_size=S)``: the shorter
  side resized to ``S`` (bilinear, antialiased when shrinking; image files are decoded at ``S`` by
  Pillow, in-memory arrays resized by :func:`resize_images`) and the centre ``S x S`` cropped;
* **channels**: gray repeated to RGB, RGB to gray by the ITU-R 601-2 luma ``0.299 R + 0.587 G + 0.114 B``
  (Pillow's ``convert("L")`` weights), rounded (:func:`match_channels`); no other conversion exists;
* **normalisation**: the encoder's training statistics, not the new dataset's;
* **classes**: the new dataset's (a new classifier is trained; the checkpoint's head or classifier is unused).

:func:`load_adapted_splits` loads a config's dataset that way and :func:`adapt_splits` adapts splits
already in memory; both return an :class:`Adaptation` that says what changed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from supcon.config import Config, ConfigError
from supcon.data.base import _fit_square
from supcon.data.splits import DataSplits, load_splits

__all__ = ["EncoderInput", "Adaptation", "match_channels", "resize_images", "adapt_splits", "load_adapted_splits",
           "check_probe_image_size", "CHANNEL_NAMES"]

#: How a channel count is named in messages.
CHANNEL_NAMES: dict[int, str] = {1: "gray", 3: "RGB"}

# ITU-R 601-2 luma, the weights of Pillow's own RGB -> L conversion.
_LUMA = (0.299, 0.587, 0.114)


def _channel_name(channels: int) -> str:
    return CHANNEL_NAMES.get(channels, f"{channels}-channel")


@dataclass(frozen=True)
class EncoderInput:
    """The images an encoder was trained on, as its checkpoint records them.

    Attributes:
        channels: ``C``, 1 or 3.
        image_size: the side ``S`` of its (square) training images.
        mean, std: per-channel normalisation of its training split, ``C`` floats each.
        dataset: the spec it was trained on (``None`` when the checkpoint does not say).
        num_classes: the classes of its training data (``None`` when not recorded).
    """

    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    dataset: str | None = None
    num_classes: int | None = None

    def describe(self) -> str:
        """``"32x32 RGB"``."""
        return f"{self.image_size}x{self.image_size} {_channel_name(self.channels)}"


@dataclass(frozen=True)
class Adaptation:
    """What adapting a dataset to an encoder changed.

    Attributes:
        dataset: the dataset spec probed.
        channels: the dataset's own channel count.
        image_size: the dataset's own side, or ``None`` when it was read at the encoder's side directly
            (a configured ``image_size``).
        num_classes: the dataset's classes (the new classifier's outputs).
        encoder: what the encoder takes.
    """

    dataset: str
    channels: int
    image_size: int | None
    num_classes: int
    encoder: EncoderInput

    @property
    def resized(self) -> bool:
        """Whether the images were resized to the encoder's side."""
        return self.image_size is not None and self.image_size != self.encoder.image_size

    @property
    def converted(self) -> bool:
        """Whether the channels were converted (gray <-> RGB)."""
        return self.channels != self.encoder.channels

    @property
    def is_transfer(self) -> bool:
        """Another dataset than the encoder's, or images or classes that differ from its training data."""
        other_data = self.encoder.dataset is not None and self.dataset != self.encoder.dataset
        other_classes = self.encoder.num_classes is not None and self.num_classes != self.encoder.num_classes
        return other_data or other_classes or self.resized or self.converted

    def describe(self) -> str:
        """One line: ``"transfer: digits 8x8 gray -> encoder 32x32 RGB; 10 classes (checkpoint had 10); ..."``."""
        return f"transfer: {self.summary}"

    @property
    def summary(self) -> str:
        """:meth:`describe` without its ``"transfer: "``."""
        size = f"{self.image_size}x{self.image_size}" if self.image_size is not None else "(read at the encoder's size)"
        had = f" (checkpoint had {self.encoder.num_classes})" if self.encoder.num_classes is not None else ""
        return (f"{self.dataset} {size} {_channel_name(self.channels)} -> encoder "
                f"{self.encoder.describe()}; {self.num_classes} classes{had}; encoder's normalisation")

    def as_dict(self) -> dict[str, Any]:
        """What a run records (metrics.json, the checkpoint): plain JSON values."""
        return {"summary": self.describe(), "dataset": self.dataset, "channels": self.channels,
                "image_size": self.image_size, "num_classes": self.num_classes,
                "encoder_dataset": self.encoder.dataset, "encoder_channels": self.encoder.channels,
                "encoder_image_size": self.encoder.image_size, "encoder_num_classes": self.encoder.num_classes,
                "resized": self.resized, "converted": self.converted,
                "mean": list(self.encoder.mean), "std": list(self.encoder.std)}


def match_channels(images: Tensor, channels: int) -> Tensor:
    """uint8 ``(N, C, H, W)`` images as ``channels`` channels: gray repeated to RGB, RGB to luma.

    Returns ``images`` itself when it already has ``channels`` channels.

    Raises:
        ConfigError: a conversion other than 1 <-> 3 channels.
    """
    have = int(images.shape[1])
    if have == channels:
        return images
    if (have, channels) == (1, 3):
        return images.expand(-1, 3, -1, -1).contiguous()
    if (have, channels) == (3, 1):
        weights = torch.tensor(_LUMA, dtype=torch.float32).view(1, 3, 1, 1)
        return (images.float() * weights).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
    raise ConfigError(f"images have {have} channels, the encoder takes {channels}: only gray <-> RGB is converted")


def resize_images(images: Tensor, side: int) -> Tensor:
    """uint8 ``(N, C, H, W)`` -> ``(N, C, side, side)``: the shorter side resized to ``side`` (bilinear,
    antialiased, rounded back to uint8) and the centre cropped, as ``load_dataset(image_size=side)`` does.

    Returns ``images`` itself when it is already ``side x side``.
    """
    return _fit_square(images, side, "images")


def check_probe_image_size(cfg: Config, encoder: EncoderInput, checkpoint: object) -> None:
    """A configured ``image_size`` must be the encoder's (a probe resizes every dataset to it).

    Raises:
        ConfigError: naming ``--image-size``, the value given and the encoder's side.
    """
    if cfg.image_size is not None and cfg.image_size != encoder.image_size:
        raise ConfigError(
            f"--image-size {cfg.image_size}: the encoder in {checkpoint} was trained on {encoder.describe()} "
            f"images, and a probe resizes every dataset to the encoder's side; drop --image-size "
            f"(or pass {encoder.image_size})")


def _adapted(data: DataSplits, encoder: EncoderInput, dataset: str) -> DataSplits:
    if data.channels not in CHANNEL_NAMES or encoder.channels not in CHANNEL_NAMES:
        raise ConfigError(f"--dataset {dataset} has {data.channels}-channel images and the encoder takes "
                          f"{encoder.channels}: only gray <-> RGB is converted")
    if len(encoder.mean) != encoder.channels or len(encoder.std) != encoder.channels:
        raise ConfigError(f"the encoder's normalisation has {len(encoder.mean)} means and {len(encoder.std)} "
                          f"standard deviations for {encoder.channels} channels")

    def fit(split: Any) -> Any:
        images = match_channels(resize_images(split.images, encoder.image_size), encoder.channels)
        return split if images is split.images else dataclasses.replace(split, images=images)

    train, test = fit(data.train), fit(data.test)
    mean, std = tuple(float(m) for m in encoder.mean), tuple(float(s) for s in encoder.std)
    if train is data.train and test is data.test and (mean, std) == (tuple(data.mean), tuple(data.std)):
        return data
    return DataSplits(train=train, test=test, mean=mean, std=std)


def adapt_splits(data: DataSplits, encoder: EncoderInput, dataset: str) -> tuple[DataSplits, Adaptation]:
    """Splits already in memory, as ``encoder`` takes them (see the module's rule).

    Returns ``data`` itself when nothing changes (the encoder's own data), else new splits.

    Raises:
        ConfigError: channels other than 1 or 3, naming ``--dataset``.
    """
    adaptation = Adaptation(dataset, data.channels, data.image_size, data.num_classes, encoder)
    return _adapted(data, encoder, dataset), adaptation


def load_adapted_splits(cfg: Config, encoder: EncoderInput, loaded: DataSplits | None = None,
                        checkpoint: object = "the checkpoint") -> tuple[DataSplits, Adaptation]:
    """``cfg.dataset``'s splits as ``encoder`` takes them, loaded by :func:`supcon.data.load_splits`.

    Without a configured ``image_size`` the splits are first loaded at their own size (which the
    :class:`Adaptation` records); if that is not the encoder's they are loaded again at the encoder's
    side, so image files are decoded at that side, exactly as ``supcon predict`` decodes them.

    Args:
        cfg: the probe's config (its dataset, split rules and label budget).
        encoder: what the encoder takes (:func:`supcon.checkpoint.encoder_input`).
        loaded: ``load_splits(cfg)`` when the caller has it already (it is not loaded again unless
            its size is not the encoder's).
        checkpoint: the encoder's checkpoint, for messages.

    Raises:
        ConfigError: a configured ``image_size`` other than the encoder's, or channels other than 1 or 3.
        DatasetError: the dataset cannot be loaded.
    """
    check_probe_image_size(cfg, encoder, checkpoint)
    data = loaded if loaded is not None else load_splits(cfg)
    own_size = data.image_size if cfg.image_size is None else None
    adaptation = Adaptation(cfg.dataset, data.channels, own_size, data.num_classes, encoder)
    if data.image_size != encoder.image_size:
        del data, loaded
        data = load_splits(dataclasses.replace(cfg, image_size=encoder.image_size))
    return _adapted(data, encoder, cfg.dataset), adaptation
