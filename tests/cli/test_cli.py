"""The ``supcon`` command line, in process: one smoke test per subcommand and every bad input."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from tiny_runs import TINY_SETTINGS, flags_for, tiny_arrays
from supcon.cli import main
from supcon.config import Config, load_config
from supcon.models import SupConModel, build_encoder, model_signature
from supcon.checkpoint import load_checkpoint, save_checkpoint


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _check_run_dir(run_dir: Path, n_epochs: int, acc_columns: list[str], **expected_config) -> dict:
    """The files every training command leaves; returns metrics.json."""
    cfg = load_config(run_dir / "config.yaml")  # the resolved config round-trips
    assert isinstance(cfg, Config)
    for key, value in expected_config.items():
        assert getattr(cfg, key) == value, key
    rows = _rows(run_dir / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, n_epochs + 1))
    for column in ["loss", "lr", "images_per_s", *acc_columns]:
        assert column in rows[0], f"metrics.csv lacks {column}"
        assert all(np.isfinite(float(r[column])) for r in rows)
    for column in acc_columns:
        assert all(0 <= float(r[column]) <= 100 for r in rows)
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["format"] == "supcon" and state["epoch"] == n_epochs
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == n_epochs
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    return metrics


@pytest.fixture(scope="module")
def pretrained(tiny_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SupCon checkpoint (arch small) made by ``supcon pretrain``, shared by this module's tests."""
    out = tmp_path_factory.mktemp("pretrained") / "run"
    assert main(["pretrain", "--out", str(out), *flags_for({"dataset": f"npz:{tiny_npz}", **TINY_SETTINGS})]) == 0
    return out / "checkpoint.pt"


# ---------------------------------------------------------------------------------------------
# One smoke test per subcommand
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["supcon", "simclr"])
def test_pretrain_with_online_probe(method, tmp_path, tiny_flags, capsys):
    out = tmp_path / "run"
    assert main(["pretrain", "--out", str(out), *tiny_flags(method=method, online_probe=True, epochs=2)]) == 0
    metrics = _check_run_dir(out, 2, ["online_probe_acc"], method=method, online_probe=True, epochs=2,
                             arch="small", batch_size=16)
    assert {"knn_acc", "online_probe_acc", "loss"} <= metrics.keys()
    assert {"contrastive_loss", "probe_loss"} <= _rows(out / "metrics.csv")[0].keys()
    state = load_checkpoint(out / "checkpoint.pt", kind="pretrain")
    assert state["method"] == method and state["signature"]["arch"] == "small"
    assert set(state["model"]) == {"model", "probe"}
    printed = capsys.readouterr().out
    assert f"pretrain ({method})" in printed and "knn_acc=" in printed
    assert not (out / "loss.png").exists()  # --no-plots


def test_pretrain_writes_plots(tmp_path, tiny_flags):
    out = tmp_path / "run"
    assert main(["pretrain", "--out", str(out), *tiny_flags(plots=True, online_probe=True)]) == 0
    for name in ("loss.png", "tsne.png"):
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000, name


def test_linear_probe_on_frozen_encoder(pretrained, tmp_path, tiny_flags, capsys):
    out = tmp_path / "linear"
    source_bytes = pretrained.read_bytes()
    assert main(["linear", "--checkpoint", str(pretrained), "--out", str(out), *tiny_flags(linear_epochs=2)]) == 0
    metrics = _check_run_dir(out, 2, ["test_acc"], finetune=False, linear_epochs=2)
    assert metrics["source_method"] == "supcon" and 0 <= metrics["test_acc"] <= 100
    state = load_checkpoint(out / "checkpoint.pt", kind="linear")
    assert set(state["model"]) == {"classifier"}
    assert (out / "test_predictions.pt").is_file()
    assert "linear probe" in capsys.readouterr().out
    assert pretrained.read_bytes() == source_bytes  # evaluation never writes to its source


def test_linear_finetune(pretrained, tmp_path, tiny_flags, capsys):
    out = tmp_path / "finetune"
    assert main(["linear", "--checkpoint", str(pretrained), "--out", str(out), "--finetune",
                 *tiny_flags()]) == 0
    _check_run_dir(out, 1, ["test_acc"], finetune=True)
    state = load_checkpoint(out / "checkpoint.pt", kind="linear")
    assert set(state["model"]) == {"encoder", "classifier"}
    source = load_checkpoint(pretrained)["model"]["model"]
    tuned = state["model"]["encoder"]
    assert any(not torch.equal(source["encoder." + k], v) for k, v in tuned.items() if v.is_floating_point())
    assert "fine-tune" in capsys.readouterr().out


def test_train_ce(tmp_path, tiny_flags, capsys):
    out = tmp_path / "ce"
    assert main(["train-ce", "--out", str(out), *tiny_flags(epochs=2)]) == 0
    metrics = _check_run_dir(out, 2, ["test_acc"], epochs=2)
    assert {"test_acc", "knn_acc"} <= metrics.keys()
    assert load_checkpoint(out / "checkpoint.pt", kind="ce")["method"] == "ce"
    assert "cross-entropy" in capsys.readouterr().out


def test_knn(pretrained, tiny_flags, capsys):
    assert main(["knn", "--checkpoint", str(pretrained), *tiny_flags(knn_k=3)]) == 0
    printed = capsys.readouterr().out
    assert "kNN (k=3) top-1" in printed and "%" in printed


def test_run_compares_methods(tmp_path, tiny_flags, capsys):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--methods", "supcon,ce", *tiny_flags()]) == 0
    summary = (out / "summary.md").read_text().strip().splitlines()
    assert summary[0].startswith("| method | linear-probe top-1 (%) | kNN top-1 (%)")
    assert [line.split("|")[1].strip() for line in summary[2:]] == ["supcon", "ce"]
    results = json.loads((out / "summary.json").read_text())
    assert set(results) == {"supcon", "ce"}
    for method in ("supcon", "ce"):
        assert 0 <= results[method]["linear_acc"] <= 100
        assert 0 <= results[method]["knn_acc"] <= 100
    for sub in ("supcon", "supcon/linear", "ce"):
        assert (out / sub / "checkpoint.pt").is_file(), sub
    printed = capsys.readouterr().out
    assert "| supcon |" in printed and "| ce |" in printed and "summary.md" in printed


def test_config_file_then_flags(tmp_path, tiny_flags):
    config = tmp_path / "c.yaml"
    config.write_text("epochs: 3\nlr: 0.01\ntemperature: 0.5\n")
    out = tmp_path / "run"
    assert main(["train-ce", "--out", str(out), "--config", str(config), *tiny_flags(epochs=1)]) == 0
    cfg = load_config(out / "config.yaml")
    assert (cfg.epochs, cfg.temperature) == (1, 0.5)  # flag beats file, file beats default
    assert cfg.lr == TINY_SETTINGS["lr"]


def test_resume_from_the_cli(tmp_path, tiny_flags, capsys):
    out = tmp_path / "run"
    assert main(["train-ce", "--out", str(out), *tiny_flags(epochs=1)]) == 0
    assert main(["train-ce", "--out", str(out), "--resume", *tiny_flags(epochs=2)]) == 0
    assert len(_rows(out / "metrics.csv")) == 2
    assert main(["train-ce", "--out", str(out), "--overwrite", *tiny_flags(epochs=1)]) == 0
    assert len(_rows(out / "metrics.csv")) == 1


# ---------------------------------------------------------------------------------------------
# Bad input: exit code 2 and a message on stderr that names the problem
# ---------------------------------------------------------------------------------------------


def _fails(argv: list[str], capsys, *needles: str) -> str:
    assert main([str(a) for a in argv]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert "error" in err and "Traceback" not in err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    return err


def test_missing_data_path(tmp_path, tiny_flags, capsys):
    missing = tmp_path / "nowhere.npz"
    _fails(["pretrain", "--out", tmp_path / "r", *tiny_flags(dataset=f"npz:{missing}")], capsys,
           str(missing), "does not exist")


def test_empty_data_folder(tmp_path, tiny_flags, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails(["train-ce", "--out", tmp_path / "r", *tiny_flags(dataset=f"folder:{empty}")], capsys, str(empty))


def test_empty_npz(tmp_path, tiny_flags, capsys):
    path = tmp_path / "empty.npz"
    np.savez(path, images=np.zeros((0, 8, 8), np.uint8), labels=np.zeros(0, np.int64))
    _fails(["pretrain", "--out", tmp_path / "r", *tiny_flags(dataset=f"npz:{path}")], capsys, "empty")


@pytest.mark.parametrize("bad", ["negative", "beyond_classes"])
def test_labels_out_of_range_in_npz(bad, tmp_path, tiny_flags, capsys):
    arrays = tiny_arrays()
    if bad == "negative":
        arrays["labels"][5] = -1
    else:
        arrays["classes"] = np.array(["a", "b"])  # labels go up to 3
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    _fails(["pretrain", "--out", tmp_path / "r", *tiny_flags(dataset=f"npz:{path}")], capsys,
           "labels out of range")


def test_checkpoint_from_another_architecture(pretrained, tmp_path, tiny_flags, capsys):
    """resnet18 weights under a signature edited to say 'small' do not load into a small CNN."""
    model = SupConModel(build_encoder("resnet18", in_channels=1, stem="cifar"), head="mlp", feat_dim=16)
    signature = {**model_signature(model), "arch": "small"}
    state = load_checkpoint(pretrained)
    state.update(signature=signature, model={"model": model.state_dict()})
    fake = tmp_path / "edited.pt"
    save_checkpoint(state, fake)
    for command in (["linear", "--out", tmp_path / "l"], ["knn"]):
        _fails([*command, "--checkpoint", fake, *tiny_flags()], capsys, str(fake), "'small'", "do not fit")


def test_checkpoint_with_other_channel_count(pretrained, tmp_path, tiny_flags):
    """RGB images probe a gray encoder through their luma (transfer; tests/data/test_transfer_adapt.py)."""
    arrays = tiny_arrays()
    rgb = {k: (np.repeat(v[..., None], 3, axis=-1) if k.startswith("images") else v) for k, v in arrays.items()}
    path = tmp_path / "rgb.npz"
    np.savez(path, **rgb)
    out = tmp_path / "l"
    assert main(["linear", "--checkpoint", str(pretrained), "--out", str(out), *tiny_flags(dataset=f"npz:{path}")]) == 0
    assert json.loads((out / "metrics.json").read_text())["transfer"]["converted"]


@pytest.mark.parametrize("content", ["torch_dict", "random_bytes", "linear_checkpoint"])
def test_non_supcon_checkpoint(content, tmp_path, tiny_flags, capsys):
    path = tmp_path / "file.pt"
    if content == "torch_dict":
        torch.save({"a": 1}, path)
        needle = "not a supcon checkpoint"
    elif content == "random_bytes":
        path.write_bytes(os.urandom(300))
        needle = "not a readable supcon checkpoint"
    else:
        save_checkpoint({"kind": "linear", "epoch": 1, "config": {}}, path)
        needle = "'linear' checkpoint"
    for command in (["linear", "--out", tmp_path / "l"], ["knn"]):
        err = _fails([*command, "--checkpoint", path, *tiny_flags()], capsys, str(path), needle)
        assert "weights_only" not in err and len(err.splitlines()) == 1


def test_missing_checkpoint(tmp_path, tiny_flags, capsys):
    _fails(["knn", "--checkpoint", tmp_path / "none.pt", *tiny_flags()], capsys, "none.pt", "not found")


def test_run_directory_that_holds_a_run(pretrained, tmp_path, tiny_flags, capsys):
    out = pretrained.parent
    before = (out / "checkpoint.pt").read_bytes()
    _fails(["pretrain", "--out", out, *tiny_flags()], capsys, str(out), "already holds a run", "--resume",
           "--overwrite")
    _fails(["train-ce", "--out", out, *tiny_flags()], capsys, "already holds a run")
    assert (out / "checkpoint.pt").read_bytes() == before
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails(["pretrain", "--out", empty, "--resume", *tiny_flags()], capsys, "--resume", "does not exist")
    _fails(["pretrain", "--out", tmp_path / "never", "--resume", *tiny_flags()], capsys, "does not exist")


def test_resume_and_overwrite_together_is_a_usage_error(tmp_path, tiny_flags, capsys):
    with pytest.raises(SystemExit) as info:
        main(["pretrain", "--out", str(tmp_path), "--resume", "--overwrite", *tiny_flags()])
    assert info.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_unknown_yaml_key(tmp_path, tiny_flags, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("epochs: 1\nlearning_rate: 0.1\n")
    _fails(["pretrain", "--out", tmp_path / "r", "--config", config, *tiny_flags()], capsys,
           "unknown config key 'learning_rate'")
    _fails(["pretrain", "--out", tmp_path / "r", "--config", tmp_path / "absent.yaml", *tiny_flags()], capsys,
           "absent.yaml", "not found")
    assert not (tmp_path / "r" / "config.yaml").exists()


@pytest.mark.parametrize(
    ("flags", "needles"),
    [
        (["--lr", "-1"], ["lr must be > 0", "-1"]),
        (["--method", "foo"], ["method must be one of", "'foo'"]),
        (["--epochs", "abc"], ["epochs expects int", "'abc'"]),
        (["--batch-size", "0"], ["batch_size must be >= 1"]),
        (["--optimizer", "adam"], ["optimizer", "'adam'"]),
        (["--temperature", "0"], ["temperature"]),
    ],
)
def test_bad_flag_values(flags, needles, tmp_path, tiny_flags, capsys):
    _fails(["pretrain", "--out", tmp_path / "r", *tiny_flags(), *flags], capsys, *needles)
    assert not (tmp_path / "r").exists()


def test_unknown_run_method(tmp_path, tiny_flags, capsys):
    _fails(["run", "--out", tmp_path / "r", "--methods", "supcon,moco", *tiny_flags()], capsys, "'moco'")


def test_batch_larger_than_dataset_shrinks_with_a_warning(tmp_path, tiny_flags, capsys, caplog):
    out = tmp_path / "r"
    with caplog.at_level("WARNING"):
        assert main(["pretrain", "--out", str(out), *tiny_flags(batch_size=128)]) == 0
    assert "larger than the training set (64 images): using batches of 64" in caplog.text


def test_an_exploding_probe_loss_stops_with_advice(tmp_path, tiny_flags, capsys):
    """A learning rate far too high makes the probe's loss explode: exit 2, the bound and the flag to change."""
    assert main(["pretrain", "--out", str(tmp_path / "pre"), *tiny_flags()]) == 0
    code = main(["linear", "--checkpoint", str(tmp_path / "pre" / "checkpoint.pt"), "--out", str(tmp_path / "lin"),
                 *tiny_flags(linear_lr=1e9, linear_epochs=3, log_every=1)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "diverged" in err or "loss became" in err
    assert "--linear-lr" in err


def test_diverging_loss_is_a_clear_error_not_a_traceback(tmp_path, tiny_flags, capsys, monkeypatch):
    """A NaN loss stops the run with exit code 2 and a message saying what to change."""
    import supcon.train.methods.ce as engine

    real_fit = engine.fit

    def fit_with_nan_loss(task, *args, **kwargs):
        step = task.step

        def nan_step(images, labels):
            loss, extras = step(images, labels)
            return loss * float("nan"), extras

        task.step = nan_step
        return real_fit(task, *args, **kwargs)

    monkeypatch.setattr(engine, "fit", fit_with_nan_loss)
    code = main(["train-ce", "--out", str(tmp_path / "nan"), *tiny_flags(epochs=1)])
    err = capsys.readouterr().err
    assert code == 2
    assert "loss became nan" in err and "--lr" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["pretrain", "linear", "train-ce", "knn", "run", "robustness", "sweep",
                                     "gradients", "report"])
def test_every_command_prints_its_help(command, capsys):
    """Help texts go through argparse's %-formatting: a bare '%' in a field's help must not crash it."""
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: supcon" in capsys.readouterr().out
