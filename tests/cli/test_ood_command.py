"""``supcon ood`` at the command line, end to end on a tiny generated image folder (trained on through the
CLI) against digits and an RGB folder of another size; wrong inputs exit 2 with one line naming the flag."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from supcon.cli import main
from tiny_runs import TINY_SETTINGS, flags_for, tiny_arrays


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``gray``: DIR/{train,test}/<class>/<k>.png, the tiny 8x8 gray dataset; ``rgb``: 10 RGB noise PNGs
    of 20x14 in two class folders (OOD)."""
    root = tmp_path_factory.mktemp("ood_folders")
    arrays = tiny_arrays()
    for split, suffix in (("train", ""), ("test", "_test")):
        for i, (image, label) in enumerate(zip(arrays[f"images{suffix}"], arrays[f"labels{suffix}"])):
            folder = root / "gray" / split / f"c{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i}.png")
    rng = np.random.default_rng(0)
    for i in range(10):
        folder = root / "rgb" / f"n{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (14, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return {"gray": root / "gray", "rgb": root / "rgb"}


@pytest.fixture(scope="module")
def runs(folders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A pretrain and a CE checkpoint trained through the CLI on the gray folder."""
    root = tmp_path_factory.mktemp("ood_runs")
    flags = flags_for({"dataset": f"folder:{folders['gray']}", **TINY_SETTINGS})
    assert main(["pretrain", "--out", str(root / "pretrain"), *flags]) == 0
    assert main(["train-ce", "--out", str(root / "ce"), *flags]) == 0
    return {"pretrain": root / "pretrain" / "checkpoint.pt", "ce": root / "ce" / "checkpoint.pt"}


def _error_line(argv: list, capsys: pytest.CaptureFixture[str]) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("supcon ood: error: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_ce_against_digits(runs, folders, tmp_path, capsys):
    out = tmp_path / "ood"
    assert main(["ood", "--checkpoint", str(runs["ce"]), "--ood-dataset", "digits", "--k", "5", "--out", str(out),
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert f"in folder:{folders['gray']} (test split, 32 images; train split 64 fits the scores)" in printed
    assert "vs OOD digits (test split, 360 images); in-distribution is the positive class, k = 5" in printed
    assert "| score | AUROC (%) | AUPR-In (%) | AUPR-Out (%) | FPR@95%TPR (%) |" in printed
    assert {p.name for p in out.iterdir()} == {"ood.json", "ood.csv", "ood.md", "ood_scores.npz", "ood_cosine.png",
                                               "ood_knn.png", "ood_mahalanobis.png", "ood_msp.png", "ood_energy.png"}
    summary = json.loads((out / "ood.json").read_text())
    assert summary["scores"] == ["cosine", "knn", "mahalanobis", "msp", "energy"]
    assert len(list(csv.DictReader((out / "ood.csv").open(newline="")))) == 5
    assert (out / "ood.md").read_text().count("\n") == 7


def test_pretrain_against_an_rgb_folder(runs, folders, tmp_path, capsys):
    out = tmp_path / "ood"
    assert main(["ood", "--checkpoint", str(runs["pretrain"]), "--in-dataset", f"folder:{folders['gray']}",
                 "--ood-dataset", f"folder:{folders['rgb']}", "--ood-split", "all", "--scores", "knn,mahalanobis",
                 "--k", "3", "--no-plots", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "(all split, 10 images)" in printed and "| knn |" in printed and "| cosine |" not in printed
    assert not list(out.glob("*.png"))
    assert main(["ood", "--checkpoint", str(runs["pretrain"]), "--ood-dataset", "digits", "--k", "3",
                 "--no-plots", "--out", str(out)]) == 0
    assert "note: msp and energy skipped: a pretrain checkpoint has no classifier" in capsys.readouterr().out


@pytest.mark.parametrize("extra, needle", [
    (["--scores", "odin"], "--scores must be 'all' or distinct comma-separated names"),
    (["--scores", "msp"], "--scores msp: "),
    (["--k", "0"], "--k must be a positive int"),
    (["--k", "65"], "--k 65 exceeds the 64 images"),
    (["--ood-dataset", "nope:x"], "unknown dataset kind 'nope'"),
    (["--in-dataset", "folder:/does/not/exist"], "does not exist"),
])
def test_bad_arguments(extra, needle, runs, tmp_path, capsys):
    argv = ["ood", "--checkpoint", runs["pretrain"], "--ood-dataset", "digits", "--out", tmp_path / "o", *extra]
    assert needle in _error_line(argv, capsys)


def test_wrong_inputs(runs, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert "--out" in _error_line(["ood", "--checkpoint", runs["ce"], "--ood-dataset", "digits",
                                   "--out", tmp_path / "file"], capsys)
    line = _error_line(["ood", "--checkpoint", runs["ce"].parent, "--ood-dataset", "digits"], capsys)
    assert "is a run folder: pass its checkpoint" in line
    torch.save({"format": "supcon", "version": 1, "kind": "sweep"}, tmp_path / "x.pt")
    line = _error_line(["ood", "--checkpoint", tmp_path / "x.pt", "--ood-dataset", "digits"], capsys)
    assert "'sweep' checkpoint, which holds no encoder representation" in line
    assert "checkpoint not found" in _error_line(["ood", "--checkpoint", tmp_path / "none.pt",
                                                  "--ood-dataset", "digits"], capsys)


def test_help(capsys):
    with pytest.raises(SystemExit):
        main(["ood", "--help"])
    text = capsys.readouterr().out
    for flag in ("--checkpoint", "--in-dataset", "--ood-dataset", "--ood-split", "--scores", "--k", "--no-plots"):
        assert flag in text
