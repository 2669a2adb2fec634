"""Robustness (supcon.eval.robustness): argument parsing, classifier loading, robustness on tiny
trained checkpoints and CIFAR-10-C arrays, and the CLI's errors."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from supcon.checkpoint import CheckpointError, load_checkpoint, load_classifier, save_checkpoint
from supcon.cli import main
from supcon.config import ConfigError, config_from_dict
from supcon.corruptions import CORRUPTIONS, EXTRA_CORRUPTIONS
from supcon.data import DatasetError, load_splits
from supcon.eval.robustness import (
    classifier_accuracy,
    evaluate_robustness,
    parse_corruptions,
    parse_severities,
    run_robustness,
)
from supcon.report.plots import write_robustness_plots
from supcon.train.methods import pretrain, train_ce, train_linear
from tiny_runs import TINY_SETTINGS

# ---------------------------------------------------------------------------------------------
# Argument parsing
# ---------------------------------------------------------------------------------------------


def test_parse_corruptions_all_groups_and_names():
    assert parse_corruptions("all") == list(CORRUPTIONS)
    assert parse_corruptions("all+extra") == list(CORRUPTIONS + EXTRA_CORRUPTIONS)
    assert parse_corruptions("noise,fog,gaussian_noise") == ["gaussian_noise", "shot_noise", "impulse_noise", "fog"]
    with pytest.raises(ConfigError, match="unknown corruption 'fogg'"):
        parse_corruptions("fog,fogg")


@pytest.mark.parametrize("spec, match", [("0", "got 0"), ("1,6", "got 6"), ("1,x", "'x'"), ("", "empty"),
                                         ("2.5", "'2.5'")])
def test_parse_severities_rejects_out_of_range(spec, match):
    with pytest.raises(ConfigError, match=match):
        parse_severities(spec)


def test_parse_severities_sorts_and_dedupes():
    assert parse_severities("5,1,3,1") == [1, 3, 5]


@pytest.mark.parametrize("argv, match", [
    (["--batch-size", "0"], "--batch-size (batch_size) must be a positive integer, got 0"),
    (["--batch-size", "-3"], "got -3"),
    (["--severities", "0"], "severity must be an integer from 1 to 5, got 0"),
    (["--severities", "1,7"], "got 7"),
    (["--corruptions", "fog,not_a_corruption"], "unknown corruption 'not_a_corruption'"),
])
def test_cli_robustness_reports_bad_arguments(argv, match, tmp_path, capsys):
    code = main(["robustness", "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "r"), *argv])
    assert code == 2
    err = capsys.readouterr().err
    assert "supcon robustness: error:" in err and match in err
    assert not (tmp_path / "r").exists()


def test_cli_robustness_reports_a_missing_checkpoint(tmp_path, capsys):
    code = main(["robustness", "--checkpoint", str(tmp_path / "missing.pt"), "--corruptions", "fog",
                 "--severities", "1", "--out", str(tmp_path / "r")])
    assert code == 2
    assert "checkpoint not found" in capsys.readouterr().err

# ---------------------------------------------------------------------------------------------
# Tiny trained checkpoints
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_runs(tiny_npz, tmp_path_factory):
    """A 1-epoch SupCon pretrain + linear probe and a 1-epoch CE run on the tiny npz dataset."""
    root = tmp_path_factory.mktemp("tiny_runs")
    cfg = config_from_dict({"dataset": f"npz:{tiny_npz}", **TINY_SETTINGS, "linear_epochs": 3})
    data = load_splits(cfg)
    pretrain(cfg, root / "supcon", data=data)
    lin = train_linear(cfg, root / "supcon" / "checkpoint.pt", root / "supcon" / "linear", data=data)
    ce = train_ce(cfg, root / "ce", data=data)
    return {"root": root, "cfg": cfg, "data": data, "linear": root / "supcon" / "linear" / "checkpoint.pt",
            "pretrain": root / "supcon" / "checkpoint.pt", "ce": root / "ce" / "checkpoint.pt",
            "linear_acc": lin["test_acc"], "ce_acc": ce["test_acc"]}


@pytest.mark.parametrize("which", ["linear", "ce"])
def test_load_classifier_reproduces_the_engine_accuracy(tiny_runs, which):
    net = load_classifier(tiny_runs[which])
    test = tiny_runs["data"].test
    acc = classifier_accuracy(net, test.images, test.labels)
    assert acc == pytest.approx(tiny_runs[f"{which}_acc"], abs=1e-4)
    assert net.info["kind"] == which
    assert net.info["method"] == ("supcon" if which == "linear" else "ce")
    logits = net(test.images[:5])
    assert logits.shape == (5, test.num_classes)
    # uint8 and float [0, 1] inputs give the same logits
    assert torch.allclose(logits, net(test.images[:5].float() / 255), atol=1e-5)


def test_load_classifier_rejects_a_pretrain_checkpoint(tiny_runs):
    with pytest.raises(CheckpointError, match="pretrain checkpoint.*supcon linear"):
        load_classifier(tiny_runs["pretrain"])


def test_load_classifier_finds_the_encoder_of_a_moved_run(tiny_runs, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(tiny_runs["pretrain"].parent, moved)
    state = load_checkpoint(moved / "linear" / "checkpoint.pt")
    state["source_checkpoint"] = str(tmp_path / "gone" / "checkpoint.pt")
    save_checkpoint(state, moved / "linear" / "checkpoint.pt")
    net = load_classifier(moved / "linear" / "checkpoint.pt")
    assert Path(net.info["source_checkpoint"]) == moved / "checkpoint.pt"
    (moved / "checkpoint.pt").unlink()
    with pytest.raises(CheckpointError, match="does not exist"):
        load_classifier(moved / "linear" / "checkpoint.pt")


def test_run_robustness_writes_tables_and_plots(tiny_runs, tmp_path):
    out = tmp_path / "rob"
    summary = run_robustness(tiny_runs["linear"], out, baseline=tiny_runs["ce"], corruptions="gaussian_noise,contrast",
                             severities="1,5", device="cpu", on_finish=write_robustness_plots)
    for name in ("robustness.json", "robustness.csv", "robustness_heatmap.png", "robustness_severity.png"):
        assert (out / name).is_file(), name
    data = json.loads((out / "robustness.json").read_text())
    assert data["corruptions"] == ["gaussian_noise", "contrast"] and data["severities"] == [1, 5]
    assert data["mce_complete"] is False
    with (out / "robustness.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * (1 + 2 * 2)
    # The clean accuracy is the probe's own test accuracy.
    assert data["models"]["model"]["clean_accuracy"] == pytest.approx(tiny_runs["linear_acc"], abs=1e-4)
    # mCE recomputed by hand from the CSV's accuracies.
    acc = {(r["model"], r["corruption"], int(r["severity"])): float(r["accuracy"]) for r in rows}
    ratios = []
    for c in ("gaussian_noise", "contrast"):
        f = sum(1 - acc[("model", c, s)] / 100 for s in (1, 5))
        b = sum(1 - acc[("baseline", c, s)] / 100 for s in (1, 5))
        ratios.append(100 * f / b)
    assert data["mce"] == pytest.approx(sum(ratios) / 2)
    # Relative CEs resting on a baseline change of fewer than 5 test images are flagged.
    base = data["models"]["baseline"]
    for c in ("gaussian_noise", "contrast"):
        images = abs(sum(e - base["clean_error"] for e in base["error"][c])) * data["test_images"]
        flagged = any("fewer than 5 test images" in n and c in n for n in data["notes"])
        assert flagged == (images < 5), (c, images, data["notes"])
    # Deterministic: the same corrupted images and accuracies on a second run.
    again = run_robustness(tiny_runs["linear"], tmp_path / "rob2", baseline=tiny_runs["ce"],
                           corruptions="gaussian_noise,contrast", severities="1,5", device="cpu")
    assert again["models"] == summary["models"]


def test_cli_robustness_runs_and_prints_the_table(tiny_runs, tmp_path, capsys):
    out = tmp_path / "rob"
    code = main(["robustness", "--checkpoint", str(tiny_runs["linear"]), "--baseline", str(tiny_runs["ce"]),
                 "--corruptions", "brightness", "--severities", "3", "--device", "cpu", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| model (supcon) |" in printed and "| baseline (ce) |" in printed
    assert (out / "robustness.json").is_file()


def test_cifar_c_arrays_of_another_shape_are_refused(tiny_runs, tmp_path):
    np.save(tmp_path / "fog.npy", np.zeros((5 * 4, 32, 32, 3), np.uint8))
    np.save(tmp_path / "labels.npy", np.zeros(5 * 4, np.int64))
    with pytest.raises(DatasetError, match="--cifar-c arrays hold"):
        run_robustness(tiny_runs["linear"], tmp_path / "rob", corruptions="fog", severities="1", cifar_c=tmp_path,
                       device="cpu")


class _BrightnessClassifier(nn.Module):
    """Class 1 when the mean intensity is above one half, else class 0."""

    def forward(self, images):
        x = images.float() / 255 if images.dtype == torch.uint8 else images
        bright = (x.mean(dim=(1, 2, 3)) > 0.5).long()
        return nn.functional.one_hot(bright, 2).float()


def test_evaluate_robustness_reads_cifar_c_arrays(tmp_path):
    n = 4  # images per severity; severity s has s - 1 bright images labelled 0 (wrong), the rest right
    images = np.zeros((5 * n, 32, 32, 3), np.uint8)
    labels = np.zeros(5 * n, np.int64)
    for s in range(5):
        images[s * n: s * n + s] = 255
    np.save(tmp_path / "fog.npy", images)
    np.save(tmp_path / "labels.npy", labels)
    clean = torch.zeros(n, 3, 32, 32, dtype=torch.uint8)
    result = evaluate_robustness({"m": _BrightnessClassifier()}, clean, torch.zeros(n, dtype=torch.long), ["fog"],
                                 [1, 2, 3, 4, 5], cifar_c=tmp_path)
    assert result["m"]["clean_accuracy"] == 100.0
    assert result["m"]["accuracy"]["fog"] == pytest.approx([100.0, 75.0, 50.0, 25.0, 0.0])


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_a_batch_size_that_is_not_a_positive_int_is_refused(tmp_path, batch_size):
    with pytest.raises(ConfigError, match=r"--batch-size \(batch_size\) must be a positive integer"):
        run_robustness(tmp_path / "missing.pt", tmp_path / "r", corruptions="fog", severities="1",
                       batch_size=batch_size)
    with pytest.raises(ConfigError, match="batch_size"):
        evaluate_robustness({"m": _BrightnessClassifier()}, torch.zeros(2, 3, 4, 4, dtype=torch.uint8),
                            torch.zeros(2, dtype=torch.long), ["contrast"], [1], batch_size=batch_size)
    assert not (tmp_path / "r").exists()
