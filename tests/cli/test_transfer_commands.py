"""``supcon linear`` / ``--finetune`` / ``knn`` on an encoder pretrained on another dataset, from the command line."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tiny_runs import TINY_SETTINGS, flags_for
from transfer_runs import NPZ_CLASSES, write_gray_npz, write_rgb_folder
from supcon.cli import main

DIGITS_LINE = "transfer: digits 8x8 gray -> encoder 16x16 RGB; 10 classes (checkpoint had 3)"


@pytest.fixture(scope="module")
def rgb_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``supcon pretrain`` on a 16x16 RGB folder of 3 classes."""
    root = tmp_path_factory.mktemp("transfer_cli")
    folder = write_rgb_folder(root / "rgb16")
    out = root / "pre"
    assert main(["pretrain", "--out", str(out), *flags_for({**TINY_SETTINGS, "dataset": f"folder:{folder}"})]) == 0
    return out / "checkpoint.pt"


def _flags(**values) -> list[str]:
    return flags_for({**TINY_SETTINGS, **values})


def test_linear_on_digits_logs_and_records_the_transfer(rgb_encoder, tmp_path, capsys, caplog):
    out = tmp_path / "lin"
    with caplog.at_level(logging.INFO, logger="supcon"):
        assert main(["linear", "--checkpoint", str(rgb_encoder), "--out", str(out), *_flags(dataset="digits")]) == 0
    assert any(r.getMessage().startswith(DIGITS_LINE) for r in caplog.records)
    printed = capsys.readouterr().out
    assert "test_acc=" in printed and "knn_acc=" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["transfer"]["summary"].startswith(DIGITS_LINE) and 0 <= metrics["test_acc"] <= 100
    assert "# effective transfer: digits 8x8 gray" in (out / "config.yaml").read_text()


def test_finetune_on_a_gray_npz_of_another_size(rgb_encoder, tmp_path, capsys):
    npz = write_gray_npz(tmp_path / "g.npz")
    out = tmp_path / "ft"
    argv = ["linear", "--finetune", "--checkpoint", str(rgb_encoder), "--out", str(out), *_flags(dataset=f"npz:{npz}")]
    assert main(argv) == 0
    assert "fine-tune" in capsys.readouterr().out
    transfer = json.loads((out / "metrics.json").read_text())["transfer"]
    assert (transfer["image_size"], transfer["num_classes"], transfer["encoder_image_size"]) == (12, NPZ_CLASSES, 16)


def test_knn_on_digits_prints_the_transfer(rgb_encoder, capsys):
    assert main(["knn", "--checkpoint", str(rgb_encoder), *_flags(dataset="digits")]) == 0
    printed = capsys.readouterr().out
    assert DIGITS_LINE in printed and "top-1 on digits test split" in printed


def test_an_image_size_other_than_the_encoders_names_the_flag(rgb_encoder, tmp_path, capsys):
    argv = ["linear", "--checkpoint", str(rgb_encoder), "--out", str(tmp_path / "l"),
            *_flags(dataset="digits", image_size=8)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--image-size 8" in err and "16x16 RGB" in err and "Traceback" not in err
    assert main(["knn", "--checkpoint", str(rgb_encoder), *_flags(dataset="digits", image_size=8)]) == 2
    assert "--image-size 8" in capsys.readouterr().err
