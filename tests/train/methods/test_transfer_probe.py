"""Transfer through ``train_linear``: encoders pretrained on a 16x16 RGB folder probed (and fine-tuned) on
the 8x8 gray digits and on a 12x12 gray npz of 5 classes; a gray encoder probed on RGB images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from transfer_runs import FOLDER_CLASSES, FOLDER_SIDE, NPZ_CLASSES, pretrain_tiny, tiny_cfg, write_gray_npz, write_rgb_folder
from supcon.checkpoint import load_checkpoint, load_classifier
from supcon.config import ConfigError
from supcon.data import load_splits
from supcon.train import methods as engine
from supcon.use.predict import predict_images


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The RGB folder, the gray npz, and a tiny SupCon / SimCLR / CE encoder pretrained on the folder."""
    root = tmp_path_factory.mktemp("transfer")
    found = {"folder": write_rgb_folder(root / "rgb16"), "npz": write_gray_npz(root / "gray12.npz")}
    for method in ("supcon", "simclr", "ce"):
        found[method] = pretrain_tiny(method, f"folder:{found['folder']}", root / method)
    return found


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


@pytest.mark.parametrize("method", ["supcon", "simclr", "ce"])
def test_an_rgb_encoder_probed_on_digits(method, sources, tmp_path):
    source = sources[method]
    metrics = engine.train_linear(tiny_cfg("digits"), source, tmp_path / "lin")
    assert 0 <= metrics["test_acc"] <= 100 and 0 <= metrics["knn_acc"] <= 100
    transfer = metrics["transfer"]
    assert transfer["summary"] == (f"transfer: digits 8x8 gray -> encoder {FOLDER_SIDE}x{FOLDER_SIDE} RGB; "
                                   f"10 classes (checkpoint had {FOLDER_CLASSES}); encoder's normalisation")
    assert _metrics(tmp_path / "lin")["transfer"] == transfer
    state = load_checkpoint(tmp_path / "lin" / "checkpoint.pt", kind="linear")
    pretrained = load_checkpoint(source)
    assert (state["channels"], state["image_size"], state["num_classes"]) == (3, FOLDER_SIDE, 10)
    assert state["normalization"] == pretrained["normalization"]  # the encoder's statistics
    assert state["config"]["image_size"] == FOLDER_SIDE and state["transfer"] == transfer
    assert state["model"]["classifier"]["linear.weight"].shape[0] == 10  # a new classifier, not the CE one
    classifier = load_classifier(tmp_path / "lin" / "checkpoint.pt")
    assert classifier(torch.zeros((2, 3, FOLDER_SIDE, FOLDER_SIDE), dtype=torch.uint8)).shape == (2, 10)
    assert "transfer" in (tmp_path / "lin" / "config.yaml").read_text()


def test_a_gray_npz_of_another_size_and_class_count(sources, tmp_path):
    metrics = engine.train_linear(tiny_cfg(f"npz:{sources['npz']}"), sources["supcon"], tmp_path / "lin")
    t = metrics["transfer"]
    assert (t["channels"], t["image_size"], t["num_classes"]) == (1, 12, NPZ_CLASSES)
    assert t["resized"] and t["converted"] and len(metrics["per_class_acc"]) == NPZ_CLASSES
    predictions = torch.load(tmp_path / "lin" / "test_predictions.pt", weights_only=True)
    assert predictions.shape == (NPZ_CLASSES * 4,) and int(predictions.max()) < NPZ_CLASSES


def test_fine_tuning_on_another_dataset(sources, tmp_path):
    metrics = engine.train_linear(tiny_cfg(f"npz:{sources['npz']}", finetune=True), sources["ce"], tmp_path / "ft")
    assert 0 <= metrics["test_acc"] <= 100 and "knn_acc" not in metrics and metrics["transfer"]["resized"]
    state = load_checkpoint(tmp_path / "ft" / "checkpoint.pt", kind="linear")
    assert set(state["model"]) == {"encoder", "classifier"} and state["image_size"] == FOLDER_SIDE
    classifier = load_classifier(tmp_path / "ft" / "checkpoint.pt")
    assert classifier(torch.zeros((1, 3, FOLDER_SIDE, FOLDER_SIDE))).shape == (1, NPZ_CLASSES)


def test_a_gray_encoder_probed_on_rgb_images_and_predicting_them(sources, tmp_path):
    gray = pretrain_tiny("supcon", f"npz:{sources['npz']}", tmp_path / "gray")
    metrics = engine.train_linear(tiny_cfg(f"folder:{sources['folder']}"), gray, tmp_path / "lin")
    assert metrics["transfer"]["summary"].startswith(
        f"transfer: folder:{sources['folder']} 16x16 RGB -> encoder 12x12 gray; 3 classes (checkpoint had 5)")
    rows = predict_images(tmp_path / "lin" / "checkpoint.pt", [sources["folder"] / "test"], device="cpu")
    assert len(rows) == FOLDER_CLASSES * 4 and all(r.label in {"c0", "c1", "c2"} and not r.error for r in rows)


def test_a_transfer_probe_resumes(sources, tmp_path):
    cfg = tiny_cfg("digits")
    engine.train_linear(cfg, sources["supcon"], tmp_path / "lin")
    more = tiny_cfg("digits", linear_epochs=2)
    metrics = engine.train_linear(more, sources["supcon"], tmp_path / "lin", resume=True)
    assert metrics["epochs"] == 2 and metrics["transfer"]["dataset"] == "digits"


def test_splits_given_in_memory_are_adapted_too(sources, tmp_path):
    data = load_splits(tiny_cfg("digits"))
    metrics = engine.train_linear(tiny_cfg("digits"), sources["simclr"], tmp_path / "lin", data=data)
    assert metrics["transfer"]["converted"] and data.train.images.shape[1:] == (1, 8, 8)  # not changed in place


def test_the_encoders_own_dataset_is_no_transfer(sources, tmp_path):
    cfg = tiny_cfg(f"folder:{sources['folder']}")
    metrics = engine.train_linear(cfg, sources["supcon"], tmp_path / "lin")
    assert "transfer" not in metrics and "knn_acc" not in metrics
    assert load_checkpoint(tmp_path / "lin" / "checkpoint.pt")["config"]["image_size"] is None


def test_an_image_size_other_than_the_encoders_is_refused_before_the_run_starts(sources, tmp_path):
    with pytest.raises(ConfigError, match=r"--image-size 10: the encoder in .* was trained on 16x16 RGB"):
        engine.train_linear(tiny_cfg("digits", image_size=10), sources["supcon"], tmp_path / "lin")
    assert not (tmp_path / "lin").exists()
