"""``supcon embed``, ``supcon predict`` and ``supcon export`` at the command line: outputs, and wrong
inputs ending in exit code 2 with one error line."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import supcon
from supcon.cli import main
from tiny_runs import TINY_SETTINGS, flags_for, tiny_arrays


@pytest.fixture(scope="module")
def runs(tiny_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A pretrain and a linear-probe checkpoint trained through the CLI."""
    root = tmp_path_factory.mktemp("cli_use")
    flags = flags_for({"dataset": f"npz:{tiny_npz}", **TINY_SETTINGS})
    assert main(["pretrain", "--out", str(root / "pretrain"), *flags]) == 0
    assert main(["linear", "--checkpoint", str(root / "pretrain" / "checkpoint.pt"), "--out", str(root / "linear"),
                 *flags]) == 0
    return {"pretrain": root / "pretrain" / "checkpoint.pt", "linear": root / "linear" / "checkpoint.pt"}


def _error_line(argv: list, capsys: pytest.CaptureFixture[str]) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"supcon {argv[0]}: error: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_embed(runs, tiny_npz, tmp_path, capsys):
    out = tmp_path / "e.npz"
    assert main(["embed", "--checkpoint", str(runs["pretrain"]), "--dataset", f"npz:{tiny_npz}", "--split", "all",
                 "--out", str(out), "--projection", "--device", "cpu"]) == 0
    assert "embed: 96 images (all) -> 128-d representations and 16-d projections" in capsys.readouterr().out
    with np.load(out, allow_pickle=False) as z:
        assert z["features"].shape == (96, 128) and z["projections"].shape == (96, 16)
    assert main(["embed", "--checkpoint", str(runs["linear"]), "--dataset", f"npz:{tiny_npz}",
                 "--out", str(tmp_path / "e.csv")]) == 0
    assert len(list(csv.reader((tmp_path / "e.csv").open()))) == 33


def test_predict(runs, tmp_path, capsys):
    images = tiny_arrays()["images_test"]
    Image.fromarray(images[0]).convert("RGB").resize((20, 14)).save(tmp_path / "a.png")
    Image.fromarray(images[1]).save(tmp_path / "b.jpg")
    (tmp_path / "c.png").write_bytes(b"broken")
    out = tmp_path / "out" / "p.csv"
    assert main(["predict", "--checkpoint", str(runs["linear"]), "--images", str(tmp_path / "a.png"),
                 str(tmp_path / "b.jpg"), str(tmp_path / "c.png"), "--out", str(out), "--top-k", "2"]) == 0
    assert "predict: 3 images, 1 unreadable (see the error column)" in capsys.readouterr().out
    rows = list(csv.DictReader(out.open(newline="")))
    assert [bool(r["error"]) for r in rows] == [False, False, True]
    assert rows[0]["class"] in {"0", "1", "2", "3"} and rows[0]["top2_class"] and float(rows[0]["probability"]) > 0


def test_export_then_load(runs, tmp_path, capsys):
    out = tmp_path / "export"
    assert main(["export", "--checkpoint", str(runs["linear"]), "--out", str(out)]) == 0
    assert "supcon.load_classifier(" in capsys.readouterr().out
    images = torch.from_numpy(tiny_arrays()["images_test"][:3]).unsqueeze(1)
    with torch.no_grad():
        expected = supcon.checkpoint.load_classifier(runs["linear"])(images)
        torch.testing.assert_close(supcon.load_classifier(out)(images), expected, atol=1e-6, rtol=0)


def test_a_pretrain_checkpoint_to_predict(runs, tmp_path, capsys):
    Image.fromarray(tiny_arrays()["images_test"][0]).save(tmp_path / "a.png")
    line = _error_line(["predict", "--checkpoint", runs["pretrain"], "--images", tmp_path, "--out",
                        tmp_path / "p.csv"], capsys)
    assert "is a pretrain checkpoint" in line and "supcon linear --checkpoint" in line and "supcon embed" in line
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("argv, needle", [
    (["embed", "--dataset", "digits", "--out", "e.parquet"], "suffix must be one of .npz, .csv"),
    (["embed", "--dataset", "npz:missing.npz", "--out", "e.npz"], "does not exist"),
    (["predict", "--images", "nowhere", "--out", "p.csv"], "neither a file nor a folder"),
    (["predict", "--images", ".", "--out", "p.txt"], "must end in .csv"),
])
def test_bad_inputs(argv, needle, runs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = _error_line([argv[0], "--checkpoint", runs["linear"], *argv[1:]], capsys)
    assert needle in line


def test_missing_checkpoint_and_non_export_folder(tmp_path, capsys):
    assert "checkpoint not found" in _error_line(["export", "--checkpoint", tmp_path / "c.pt", "--out", tmp_path / "e"],
                                                 capsys)
    with pytest.raises(supcon.use.ExportError, match="has no supcon_export.json"):
        supcon.load_encoder(tmp_path)


@pytest.mark.parametrize("command", ["embed", "predict", "export"])
def test_every_use_command_prints_its_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0 and "--checkpoint" in capsys.readouterr().out
