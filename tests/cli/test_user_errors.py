"""User errors at the ``supcon`` command line (issue 11): each ends in exit code 2 and one line on stderr
naming what to change, never a Python traceback; and inputs that used to crash a command now finish."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from supcon.checkpoint import save_checkpoint
from supcon.cli import main
from supcon.models import CEModel, SupConModel, build_encoder, model_signature
from tiny_runs import TINY_SETTINGS, flags_for, tiny_arrays


def _user_error(argv: list, capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    """Runs ``supcon argv``: exit code 2, no traceback, one error line (the last) holding ``needles``."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith(f"supcon {argv[0]}: error: ")]
    assert len(errors) == 1 and err.rstrip("\n").endswith(errors[0]), err
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


# ---------------------------------------------------------------------------------------------
# Config values
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, needles",
    [
        (["--temperature", "inf"], ["temperature must be a finite number, got inf"]),
        (["--lr", "nan"], ["lr must be a finite number, got nan"]),
        (["--weight-decay", "inf"], ["weight_decay must be a finite number"]),
        (["--warmup-epochs=-inf"], ["warmup_epochs must be a finite number, got -inf"]),
        (["--linear-lr", "inf"], ["linear_lr must be a finite number"]),
        (["--method", "simclr", "--views", "1"], ["views must be >= 2 for method 'simclr'", "got 1"]),
        (["--method", "supcon", "--views", "1"], ["views must be >= 2 for method 'supcon'"]),
        (["--tsne-points", "-5"], ["tsne_points must be 0 (no t-SNE plot) or at least 2, got -5"]),
        (["--image-size", "1000000"], ["at image_size 1000000 needs about", "TiB of memory", "this machine has",
                                       "pass a smaller --image-size"]),
    ],
)
def test_bad_training_values(flags, needles, tmp_path, tiny_flags, capsys):
    _user_error(["pretrain", "--out", tmp_path / "r", *tiny_flags(), *flags], capsys, *needles)
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_tsne_points_zero_trains_without_a_tsne_plot(tmp_path, tiny_flags):
    out = tmp_path / "r"
    assert main(["pretrain", "--out", str(out), *tiny_flags(plots=True, tsne_points=0)]) == 0
    assert (out / "loss.png").is_file() and not (out / "tsne.png").exists()


@pytest.mark.parametrize("labels, needles", [
    (np.arange(64) % 4 * 1.0, ["'labels' must hold integers, got float64"]),
    (np.arange(64) % 4 - 1, ["'labels' holds negative labels (found -1)"]),
])
def test_npz_labels_that_are_not_class_numbers(labels, needles, tmp_path, tiny_flags, capsys):
    arrays = {**tiny_arrays(), "labels": labels}
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    _user_error(["pretrain", "--out", tmp_path / "r", *tiny_flags(dataset=f"npz:{path}")], capsys, str(path), *needles)


def test_sparse_npz_labels_train_as_named_classes(tmp_path, tiny_flags, capsys):
    arrays = tiny_arrays()
    arrays["labels"] = arrays["labels"] * 100 + 7  # 7, 107, 207, 307
    arrays["labels_test"] = arrays["labels_test"] * 100 + 7
    path = tmp_path / "sparse.npz"
    np.savez(path, **arrays)
    out = tmp_path / "r"
    assert main(["train-ce", "--out", str(out), *tiny_flags(dataset=f"npz:{path}")]) == 0
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["classes"] == ["7", "107", "207", "307"] and state["num_classes"] == 4


# ---------------------------------------------------------------------------------------------
# Checkpoints and the analysis commands
# ---------------------------------------------------------------------------------------------


def _tiny_config() -> dict:
    return {**TINY_SETTINGS, "dataset": "digits"}


def _pretrain_without_model(path: Path) -> Path:
    model = SupConModel(build_encoder("small", in_channels=1), head="mlp", feat_dim=16)
    save_checkpoint({"kind": "pretrain", "method": "supcon", "epoch": 1, "config": _tiny_config(),
                     "signature": model_signature(model)}, path)
    return path


@pytest.mark.parametrize("command", [["linear", "--out", "OUT"], ["knn"], ["gradients", "--out", "OUT"]])
def test_a_pretrain_checkpoint_without_a_model_key(command, tmp_path, tiny_flags, capsys):
    path = _pretrain_without_model(tmp_path / "no_model.pt")
    argv = [tmp_path / "out" if a == "OUT" else a for a in command] + ["--checkpoint", path]
    if command[0] != "gradients":
        argv += tiny_flags()
    _user_error(argv, capsys, str(path), "has no ['model'] entry")


def test_a_ce_checkpoint_without_a_model_key_given_to_robustness(tmp_path, capsys):
    model = CEModel(build_encoder("small", in_channels=1), 4)
    path = tmp_path / "ce.pt"
    save_checkpoint({"kind": "ce", "epoch": 1, "config": _tiny_config(), "signature": model_signature(model),
                     "normalization": {"mean": [0.5], "std": [0.2]}}, path)
    _user_error(["robustness", "--checkpoint", path, "--corruptions", "fog", "--severities", "1",
                 "--out", tmp_path / "r"], capsys, str(path), "has no ['model'] entry")


@pytest.mark.parametrize("size", ["0", "-8"])
def test_robustness_batch_size_must_be_positive(size, tmp_path, capsys):
    _user_error(["robustness", "--checkpoint", tmp_path / "missing.pt", "--batch-size", size, "--out",
                 tmp_path / "r"], capsys, "--batch-size", f"got {size}")
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------------------------------
# Names that are not UTF-8, hostile names and a malicious predictions file: the commands finish
# ---------------------------------------------------------------------------------------------


class _Pickled:
    def __reduce__(self):
        return (os.system, ("echo pickled object ran",))


def test_non_utf8_class_folder_then_a_report_with_hostile_inputs(tmp_path, capsys):
    """train-ce (with its t-SNE plot) on class folders b'caf\\xff' and '<img ...>', then `report` on it with
    an injected --title and a test_predictions.pt holding a pickled object: both exit 0, no traceback."""
    attack = "<img src=x onerror=alert(1)>"
    data = os.path.join(os.fsencode(tmp_path), b"data")
    for k, name in enumerate((b"caf\xff", os.fsencode(attack))):
        os.makedirs(os.path.join(data, name))
        for i in range(10):
            image = np.random.default_rng(10 * k + i).integers(0, 256, (8, 8), dtype=np.uint8)
            Image.fromarray(image).save(os.path.join(data, name, b"%d.png" % i))
    run = tmp_path / attack
    settings = {**TINY_SETTINGS, "plots": True, "tsne_points": 8, "dataset": f"folder:{os.fsdecode(data)}"}
    assert main(["train-ce", "--out", str(run), *flags_for(settings)]) == 0
    assert (run / "tsne.png").is_file()
    torch.save({"evil": _Pickled()}, run / "test_predictions.pt")
    capsys.readouterr()
    assert main(["report", str(run), "--out", str(tmp_path / "rep"), "--title", attack]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "pickled object ran" not in captured.out
    md = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    assert "no confusion matrix" in md and "<img" not in md.split("```yaml")[0]
    assert "<img src=x" not in (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("yaml_text, needle", [
    ("epochs: [1, 2\n", "not valid YAML"),
    ("!!python/object/apply:os.system ['echo injected']\n", "not valid YAML"),
    ("- a list\n", "must hold a mapping"),
    (None, "not UTF-8"),
])
def test_bad_config_files_are_one_line_errors(yaml_text, needle, tmp_path, tiny_flags, capsys):
    path = tmp_path / "bad.yaml"
    if yaml_text is None:
        path.write_bytes(b"epochs: 1 # caf\xe9\n")
    else:
        path.write_text(yaml_text)
    code = main(["pretrain", "--config", str(path), "--out", str(tmp_path / "r"), *tiny_flags()])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert needle in err and str(path) in err


@pytest.mark.parametrize("flags, needle", [
    (["--arch", "resnet9"], "arch must be one of"),
    (["--device", "gpu0"], "not a device name"),
    (["--device", "meta"], "cannot train or evaluate"),
    pytest.param(["--device", "cuda"], "CUDA is not available",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without CUDA")),
])
def test_unknown_arch_and_unusable_devices_are_one_line_errors(flags, needle, tmp_path, tiny_flags, capsys):
    code = main(["train-ce", "--out", str(tmp_path / "r"), *tiny_flags(), *flags])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert needle in err


def test_a_huge_learning_rate_stops_the_run_with_advice(tmp_path, tiny_flags, capsys):
    """--lr 1e6: the CE loss leaves any learning range within a few steps; the guard stops it (exit 2)."""
    code = main(["train-ce", "--out", str(tmp_path / "r"), *tiny_flags(lr=1e6, epochs=3, log_every=1)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert ("diverged" in err or "loss became" in err) and "--ce-lr (or --lr)" in err
