"""``supcon.use.predict``: a classifier checkpoint's top classes for loose image files."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from supcon.checkpoint import CheckpointError, load_classifier
from supcon.config import ConfigError
from supcon.data import load_dataset
from supcon.use.images import match_channels
from supcon.use.predict import predict_images, prediction_columns, write_predictions
from tiny_runs import tiny_arrays


def _probabilities(checkpoint, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return load_classifier(checkpoint)(images).softmax(1)


@pytest.mark.parametrize("kind", ["linear", "finetune", "ce"])
def test_predictions_are_the_classifier_softmax(kind, trained, tmp_path):
    arrays = tiny_arrays()
    images = arrays["images_test"][:6]
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    preds = predict_images(trained[kind], [tmp_path], top_k=2, device="cpu", chunk=4)
    assert [p.path for p in preds] == [str(tmp_path / f"{i}.png") for i in range(6)]
    expected = _probabilities(trained[kind], torch.from_numpy(images).unsqueeze(1))
    for pred, probs in zip(preds, expected):
        top = probs.topk(2)
        assert [name for name, _ in pred.top] == [str(c) for c in top.indices.tolist()]
        np.testing.assert_allclose([p for _, p in pred.top], top.values.numpy(), atol=1e-6)
        assert pred.label == pred.top[0][0] and pred.error == ""


def test_any_size_and_mode_is_read_as_the_folder_reader_reads_it(trained, png_folder):
    """RGB 12x16 files for a classifier of 8x8 gray images: the same pixels a folder dataset would hold."""
    preds = predict_images(trained["linear"], [png_folder], top_k=4, device="cpu")
    folder = load_dataset(f"folder:{png_folder}", "train", image_size=8, test_fraction=0.2)
    by_path = {str(png_folder / rel): k for k, rel in enumerate(folder.paths)}
    assert folder.channels == 3  # RGB files (gray content): the same pixels once converted to L
    expected = _probabilities(trained["linear"], match_channels(folder.images, 1))
    checked = 0
    for pred in preds:
        if pred.path in by_path:
            probs = expected[by_path[pred.path]]
            np.testing.assert_allclose([p for _, p in pred.top], probs.sort(descending=True).values.numpy(), atol=1e-6)
            checked += 1
    assert len(preds) == 20 and checked == len(folder) > 0


def test_an_unreadable_image_is_a_row_with_its_error(trained, png_folder, tmp_path):
    good = png_folder / "class0" / "0.png"
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:40])
    preds = predict_images(trained["ce"], [good, bad, truncated], top_k=9, device="cpu")
    assert [bool(p.error) for p in preds] == [False, True, True]
    assert str(bad) in preds[1].error and preds[1].top == [] and preds[1].probability is None
    assert len(preds[0].top) == 4  # top_k capped at the 4 classes
    out = write_predictions(preds, tmp_path / "p.csv", 9)
    rows = list(csv.DictReader(out.open(newline="")))
    assert list(rows[0]) == prediction_columns(4)
    assert rows[0]["class"] == preds[0].label and rows[0]["error"] == ""
    assert rows[1]["class"] == "" and rows[1]["probability"] == "" and "cannot read image" in rows[1]["error"]


def test_a_pretrain_checkpoint_says_which_command_fits(trained, png_folder):
    with pytest.raises(CheckpointError, match="is a pretrain checkpoint") as info:
        predict_images(trained["pretrain"], [png_folder])
    assert "supcon linear --checkpoint" in str(info.value) and "supcon embed" in str(info.value)


def test_missing_inputs_and_bad_values(trained, tmp_path):
    with pytest.raises(ConfigError, match="neither a file nor a folder"):
        predict_images(trained["linear"], [tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no image files"):
        predict_images(trained["linear"], [tmp_path / "empty"])
    with pytest.raises(ConfigError, match="top_k, batch_size and chunk must be positive"):
        predict_images(trained["linear"], [tmp_path], top_k=0)
    with pytest.raises(ConfigError, match="must end in .csv"):
        write_predictions([], tmp_path / "p.json", 3)
