"""``supcon.data.adapt``: another dataset fitted to an encoder (size, channels, normalisation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from transfer_runs import FOLDER_SIDE, write_gray_npz, write_rgb_folder, tiny_cfg
from supcon.checkpoint import CheckpointError, encoder_input
from supcon.config import ConfigError
from supcon.data import ImageDataset, load_dataset, load_splits
from supcon.data.adapt import (Adaptation, EncoderInput, adapt_splits, load_adapted_splits, match_channels,
                               resize_images)
from supcon.data.splits import DataSplits
from supcon.use.images import decode_images

RGB32 = EncoderInput(channels=3, image_size=32, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), dataset="folder:x",
                     num_classes=10)
GRAY8 = EncoderInput(channels=1, image_size=8, mean=(0.3,), std=(0.4,), dataset="digits", num_classes=10)


def test_rgb_to_gray_is_pillows_itu_601_luma_and_gray_to_rgb_repeats():
    rgb = torch.randint(0, 256, (5, 3, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    expected = [np.asarray(Image.fromarray(a.permute(1, 2, 0).numpy(), "RGB").convert("L")) for a in rgb]
    gray = match_channels(rgb, 1)
    assert gray.shape == (5, 1, 4, 4)
    assert (gray[:, 0].int() - torch.from_numpy(np.stack(expected)).int()).abs().max() <= 1  # Pillow: fixed point
    assert torch.equal(match_channels(gray, 3), gray.expand(-1, 3, -1, -1))


def test_resize_is_load_datasets_rule(tmp_path):
    path = write_gray_npz(tmp_path / "g.npz")
    native = load_dataset(f"npz:{path}", "train")
    assert torch.equal(resize_images(native.images, 32), load_dataset(f"npz:{path}", "train", image_size=32).images)
    assert resize_images(native.images, native.image_size) is native.images


def test_digits_to_an_rgb_encoder_describes_itself():
    data = load_splits(tiny_cfg("digits"))
    adapted, how = adapt_splits(data, RGB32, "digits")
    assert adapted.train.images.shape[1:] == (3, 32, 32) and adapted.test.images.shape[1:] == (3, 32, 32)
    assert (adapted.mean, adapted.std) == (RGB32.mean, RGB32.std)  # the encoder's statistics, not digits'
    assert torch.equal(adapted.test.labels, data.test.labels) and adapted.num_classes == 10
    assert how.resized and how.converted and how.is_transfer
    assert how.describe() == ("transfer: digits 8x8 gray -> encoder 32x32 RGB; 10 classes (checkpoint had 10); "
                              "encoder's normalisation")
    assert how.as_dict()["encoder_image_size"] == 32 and how.as_dict()["image_size"] == 8


def test_the_encoders_own_data_is_returned_unchanged():
    data = load_splits(tiny_cfg("digits"))
    same = EncoderInput(1, 8, data.mean, data.std, "digits", 10)
    adapted, how = adapt_splits(data, same, "digits")
    assert adapted is data and not how.is_transfer


def test_folder_images_are_decoded_at_the_encoders_side_as_predict_decodes_them(tmp_path):
    root = write_rgb_folder(tmp_path / "rgb")
    adapted, how = load_adapted_splits(tiny_cfg(f"folder:{root}"), GRAY8)
    assert how.image_size == FOLDER_SIDE and how.channels == 3 and how.resized and how.converted
    assert adapted.test.images.shape[1:] == (1, 8, 8)
    files = [root / p for p in load_dataset(f"folder:{root}", "test").paths]
    # the folder is read as RGB at the encoder's side, then converted to luma in memory
    decoded, failures = decode_images(files, 3, 8)
    assert not failures and torch.equal(adapted.test.images, match_channels(decoded, 1))


def test_a_configured_image_size_reads_at_it_and_another_is_refused(tmp_path):
    path = write_gray_npz(tmp_path / "g.npz")
    adapted, how = load_adapted_splits(tiny_cfg(f"npz:{path}", image_size=32), RGB32)
    assert how.image_size is None and "(read at the encoder's size)" in how.describe()
    assert adapted.train.images.shape[1:] == (3, 32, 32)
    with pytest.raises(ConfigError, match=r"--image-size 24: .* 32x32 RGB .*drop --image-size"):
        load_adapted_splits(tiny_cfg(f"npz:{path}", image_size=24), RGB32)


def test_channels_other_than_gray_or_rgb_name_the_dataset():
    images = torch.zeros((4, 2, 8, 8), dtype=torch.uint8)
    split = ImageDataset(images, torch.tensor([0, 1, 0, 1]), ["a", "b"], "two")
    data = DataSplits(train=split, test=split, mean=(0.0, 0.0), std=(1.0, 1.0))
    with pytest.raises(ConfigError, match=r"--dataset npz:two.npz has 2-channel images"):
        adapt_splits(data, RGB32, "npz:two.npz")


def test_encoder_input_from_a_checkpoint_state(tmp_path):
    state = {"channels": 3, "image_size": 32, "normalization": {"mean": [0.1, 0.2, 0.3], "std": [1, 1, 1]},
             "num_classes": 10, "config": {"dataset": "folder:/data"}}
    assert encoder_input(state, "c.pt") == EncoderInput(3, 32, (0.1, 0.2, 0.3), (1.0, 1.0, 1.0), "folder:/data", 10)
    assert encoder_input({"channels": 3}, "c.pt") is None  # a checkpoint that does not record its data
    with pytest.raises(CheckpointError, match="c.pt: its 'normalization' entry must hold 3 means"):
        encoder_input({**state, "normalization": {"mean": [0.1], "std": [1]}}, "c.pt")
    with pytest.raises(CheckpointError, match="must be positive ints"):
        encoder_input({**state, "image_size": 0}, "c.pt")


def test_an_adaptation_of_another_class_count_only_is_a_transfer():
    how = Adaptation("npz:other.npz", 1, 8, 5, GRAY8)
    assert how.is_transfer and not how.resized and not how.converted
    assert "5 classes (checkpoint had 10)" in how.describe()
