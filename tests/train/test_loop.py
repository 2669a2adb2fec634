"""The training loop: exact resume, run-directory rules, epoch batches, early config errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from supcon.config import ConfigError
from supcon.runfiles import RunDirError
from supcon.train import loop
from supcon.train import methods as engine
from supcon.train.loop import epoch_batches


class _Interrupted(Exception):
    """Stands in for a crash (or Ctrl-C) right after the first checkpoint was written."""


def _crash_after_first_checkpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    real_save = loop.save_checkpoint

    def save_then_crash(state, path):
        real_save(state, path)
        raise _Interrupted(f"killed after epoch {state['epoch']}")

    monkeypatch.setattr(loop, "save_checkpoint", save_then_crash)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _assert_same_run(full: Path, resumed: Path, columns: list[str]) -> None:
    """Final weights, optimizer state and per-epoch metrics of two run directories are identical."""
    a = torch.load(full / "checkpoint.pt", weights_only=True)
    b = torch.load(resumed / "checkpoint.pt", weights_only=True)
    assert a["epoch"] == b["epoch"]
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:
        sa, sb = a["model"][name], b["model"][name]
        assert sa.keys() == sb.keys()
        for key in sa:
            assert torch.equal(sa[key], sb[key]), f"{name}.{key} differs after resume"
    for pid, state in a["optimizer"]["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                assert torch.equal(value, b["optimizer"]["state"][pid][key]), f"optimizer {pid}.{key}"
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    rows_a, rows_b = _csv_rows(full / "metrics.csv"), _csv_rows(resumed / "metrics.csv")
    assert len(rows_a) == len(rows_b) == a["epoch"]
    for ra, rb in zip(rows_a, rows_b):
        for column in columns:
            assert ra[column] == rb[column], f"{column} differs in epoch {ra['epoch']}"


def _resume_check(monkeypatch, tmp_path, run, columns):
    run(tmp_path / "full")
    with monkeypatch.context() as patch:
        _crash_after_first_checkpoint(patch)
        with pytest.raises(_Interrupted):
            run(tmp_path / "resumed")
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    # The crash came between the checkpoint and metrics.csv: resuming rewrites the CSV from the
    # history stored in the checkpoint.
    assert not (tmp_path / "resumed" / "metrics.csv").exists()
    # Starting it afresh is refused; resuming continues it.
    with pytest.raises(RunDirError):
        run(tmp_path / "resumed")
    run(tmp_path / "resumed", resume=True)
    _assert_same_run(tmp_path / "full", tmp_path / "resumed", columns)


def test_resumed_supcon_pretraining_with_online_probe_is_identical(tmp_path, monkeypatch, tiny_config):
    # Warm-up spans the interruption, so the schedule's position must be restored too.
    cfg = tiny_config(epochs=2, online_probe=True, warmup_epochs=1.5)
    _resume_check(monkeypatch, tmp_path, lambda d, **kw: engine.pretrain(cfg, d, **kw),
                  ["epoch", "loss", "lr", "contrastive_loss", "probe_loss", "online_probe_acc"])


def test_resumed_cross_entropy_training_is_identical(tmp_path, monkeypatch, tiny_config):
    cfg = tiny_config(epochs=2, schedule="step")
    _resume_check(monkeypatch, tmp_path, lambda d, **kw: engine.train_ce(cfg, d, **kw),
                  ["epoch", "loss", "lr", "test_acc"])


def test_resumed_linear_probe_with_augmentation_is_identical(tmp_path, monkeypatch, tiny_config):
    engine.pretrain(tiny_config(), tmp_path / "pre")
    cfg = tiny_config(linear_epochs=2, linear_augment="sim")
    ckpt = tmp_path / "pre" / "checkpoint.pt"
    _resume_check(monkeypatch, tmp_path, lambda d, **kw: engine.train_linear(cfg, ckpt, d, **kw),
                  ["epoch", "loss", "lr", "test_acc"])


def test_resumed_supcon_with_m_per_class_batches_is_identical(tmp_path, monkeypatch, tiny_config):
    cfg = tiny_config(epochs=2, sampler="m-per-class", m_per_class=4, class_weights="inverse")
    _resume_check(monkeypatch, tmp_path, lambda d, **kw: engine.pretrain(cfg, d, **kw),
                  ["epoch", "loss", "lr", "positives_per_anchor", "anchors_without_positive"])
    rows = _csv_rows(tmp_path / "full" / "metrics.csv")
    # 16 images of 4 classes x 4: 3 other images x 2 views + 1 own view; every anchor has one
    assert [float(r["positives_per_anchor"]) for r in rows] == [7.0, 7.0]
    assert [float(r["anchors_without_positive"]) for r in rows] == [0.0, 0.0]


def test_same_seed_same_numbers_other_seed_other_numbers(tmp_path, tiny_config):
    a = engine.train_ce(tiny_config(), tmp_path / "a")
    b = engine.train_ce(tiny_config(), tmp_path / "b")
    c = engine.train_ce(tiny_config(seed=1), tmp_path / "c")
    assert a["loss"] == b["loss"]
    assert a["loss"] != c["loss"]


def test_a_batch_larger_than_the_training_set_shrinks_with_a_warning(tmp_path, tiny_config, caplog):
    """64 training images, batch 128: one batch of 64 per epoch, said in the log and in config.yaml."""
    with caplog.at_level("WARNING"):
        metrics = engine.pretrain(tiny_config(batch_size=128), tmp_path / "pre")
    assert "--batch-size 128 is larger than the training set (64 images): using batches of 64" in caplog.text
    assert metrics["epochs"] == 1
    text = (tmp_path / "pre" / "config.yaml").read_text()
    assert "# effective batch_size: 64 (asked 128" in text and "batch_size: 128" in text
    ce = engine.train_ce(tiny_config(batch_size=1000), tmp_path / "ce")
    assert ce["epochs"] == 1


def test_the_linear_scaling_rule_and_default_warm_up(tmp_path, tiny_config):
    """lr is per 256 images: batch 16 at lr 0.32 trains at 0.02; pretraining warms up 10% of its epochs."""
    engine.pretrain(tiny_config(lr=0.32, lr_scaling="linear", warmup_epochs=None, epochs=10, batch_size=16),
                    tmp_path / "pre")
    text = (tmp_path / "pre" / "config.yaml").read_text()
    assert "# effective lr: 0.02 (0.32 x 16/256)" in text and "# effective warmup_epochs: 1" in text
    rows = _csv_rows(tmp_path / "pre" / "metrics.csv")
    # The first epoch ends its warm-up at the peak rate (the schedule's last warm-up step), then decays.
    assert float(rows[0]["lr"]) <= 0.02 + 1e-12 and float(rows[-1]["lr"]) < float(rows[1]["lr"]) <= 0.02 + 1e-12
    engine.train_ce(tiny_config(lr=0.32, lr_scaling="none"), tmp_path / "ce")
    assert "# effective lr: 0.32\n" in (tmp_path / "ce" / "config.yaml").read_text()


def test_metrics_csv_and_json_follow_the_checkpoint_history(tmp_path, tiny_config):
    metrics = engine.train_ce(tiny_config(epochs=2), tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    rows = _csv_rows(tmp_path / "metrics.csv")
    assert [float(r["loss"]) for r in rows] == [h["loss"] for h in state["history"]]
    assert metrics["loss"] == state["history"][-1]["loss"]
    assert metrics["epochs"] == 2 and "knn_acc" in metrics and "test_acc" in metrics
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


# ---------------------------------------------------------------------------------------------
# Run directories
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Epoch batches
# ---------------------------------------------------------------------------------------------


def test_epoch_batches_are_a_seeded_permutation_per_epoch():
    first = epoch_batches(50, 16, epoch=0, seed=3)
    assert [len(b) for b in first] == [16, 16, 16]  # drop_last
    flat = torch.cat(first)
    assert len(set(flat.tolist())) == 48 and flat.max() < 50
    again = epoch_batches(50, 16, epoch=0, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    other_epoch = torch.cat(epoch_batches(50, 16, epoch=1, seed=3))
    assert not torch.equal(flat, other_epoch)
    other_seed = torch.cat(epoch_batches(50, 16, epoch=0, seed=4))
    assert not torch.equal(flat, other_seed)


def test_epoch_batches_keep_the_tail_without_drop_last_and_split_ranks():
    batches = epoch_batches(10, 4, 0, 0, drop_last=False, shuffle=False)
    assert [b.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    global_batches = epoch_batches(32, 8, 0, 0)
    per_rank = [epoch_batches(32, 8, 0, 0, rank=r, world_size=2) for r in range(2)]
    for i, whole in enumerate(global_batches):
        assert torch.equal(torch.cat([per_rank[0][i], per_rank[1][i]]), whole)
    with pytest.raises(ConfigError, match="divisible by the world size"):
        epoch_batches(32, 7, 0, 0, world_size=2)
    with pytest.raises(ConfigError, match="larger than the training set"):
        epoch_batches(5, 8, 0, 0)


@pytest.mark.parametrize("changed", [{"feat_dim": 8}, {"online_probe": True}, {"arch": "resnet18"}])
def test_resume_with_settings_that_do_not_fit_the_checkpoint(changed, tmp_path, tiny_config):
    from supcon.checkpoint import CheckpointError

    engine.pretrain(tiny_config(), tmp_path)
    with pytest.raises(CheckpointError, match="does not fit this run.*config.yaml"):
        engine.pretrain(tiny_config(epochs=2, **changed), tmp_path, resume=True)


def test_resume_of_a_finished_run_trains_nothing_more(tmp_path, tiny_config):
    first = engine.train_ce(tiny_config(), tmp_path)
    weights = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]["model"]
    again = engine.train_ce(tiny_config(), tmp_path, resume=True)
    assert again["loss"] == first["loss"]
    after = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]["model"]
    assert all(torch.equal(weights[k], v) for k, v in after.items())
    assert len(_csv_rows(tmp_path / "metrics.csv")) == 1


def test_resume_refuses_a_checkpoint_of_another_kind(tmp_path, tiny_config):
    from supcon.checkpoint import CheckpointError

    engine.train_ce(tiny_config(), tmp_path)
    with pytest.raises(CheckpointError, match="'ce' checkpoint"):
        engine.pretrain(tiny_config(epochs=2), tmp_path, resume=True)


# ---------------------------------------------------------------------------------------------
# What --resume may change, and a folder that cannot be written
# ---------------------------------------------------------------------------------------------


def test_resume_with_other_settings_is_refused_naming_them(tmp_path, tiny_config):
    from supcon.checkpoint import CheckpointError

    engine.train_ce(tiny_config(), tmp_path)
    before = (tmp_path / "checkpoint.pt").read_bytes(), (tmp_path / "config.yaml").read_text()
    with pytest.raises(CheckpointError, match=r"differ from the run's \(lr 0\.05 -> 0\.2, temperature 0\.1 -> 0\.5\)"):
        engine.train_ce(tiny_config(epochs=2, lr=0.2, temperature=0.5), tmp_path, resume=True)
    with pytest.raises(CheckpointError, match="batch_size 16 -> 32"):
        engine.train_ce(tiny_config(epochs=2, batch_size=32), tmp_path, resume=True)
    assert ((tmp_path / "checkpoint.pt").read_bytes(), (tmp_path / "config.yaml").read_text()) == before


def test_resume_may_change_the_epochs_and_records_it(tmp_path, tiny_config, caplog):
    from supcon.config import load_config

    engine.pretrain(tiny_config(), tmp_path)
    with caplog.at_level("INFO"):
        engine.pretrain(tiny_config(epochs=2, tsne_points=8), tmp_path, resume=True)
    assert "resumed with changed settings: epochs 1 -> 2, tsne_points 32 -> 8" in caplog.text
    assert load_config(tmp_path / "config.yaml").epochs == 2
    assert "# effective lr" in (tmp_path / "config.yaml").read_text()
    assert len(_csv_rows(tmp_path / "metrics.csv")) == 2
    assert {"epochs", "linear_epochs", "ce_epochs", "device", "plots"} <= loop.RESUME_MAY_CHANGE
    with pytest.raises(ConfigError, match="asks for 1 epochs, but .* has trained 2 already"):
        engine.pretrain(tiny_config(epochs=1), tmp_path, resume=True)


def test_resume_into_an_unwritable_folder_trains_nothing(tmp_path, tiny_config, monkeypatch):
    import errno

    from tiny_runs import fail_writability_probe

    engine.train_ce(tiny_config(), tmp_path)
    fail_writability_probe(monkeypatch, errno.EROFS)
    monkeypatch.setattr(loop, "_run_epoch", lambda *a, **k: pytest.fail("an epoch ran"))
    with pytest.raises(RunDirError, match="cannot write to run directory .*Read-only file system"):
        engine.train_ce(tiny_config(epochs=2), tmp_path, resume=True)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["epoch"] == 1


def test_a_disk_that_fills_up_mid_run_is_a_clear_error(tmp_path, tiny_config, monkeypatch):
    import errno
    import os

    def full(state, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(loop, "save_checkpoint", full)
    with pytest.raises(RunDirError, match="after epoch 1: No space left on device; the last complete checkpoint"):
        engine.train_ce(tiny_config(), tmp_path)


def test_temp_files_a_killed_write_left_are_gone_after_the_resumed_run(tmp_path, tiny_config, monkeypatch):
    with monkeypatch.context() as patch:
        _crash_after_first_checkpoint(patch)
        with pytest.raises(_Interrupted):
            engine.train_ce(tiny_config(epochs=2), tmp_path)
    (tmp_path / ".checkpoint.pt.a1b2c3.tmp").write_bytes(b"half a checkpoint")  # killed mid-write
    engine.train_ce(tiny_config(epochs=2), tmp_path, resume=True)
    assert not list(tmp_path.glob(".*.tmp"))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [".supcon-run.json"]


def test_simclr_logs_no_label_positives(tmp_path, tiny_config):
    """SimCLR's positives are its own views: the same-label statistics would mislead, so they are absent."""
    engine.pretrain(tiny_config(method="simclr"), tmp_path / "simclr")
    engine.pretrain(tiny_config(method="supcon"), tmp_path / "supcon")
    assert "positives_per_anchor" not in _csv_rows(tmp_path / "simclr" / "metrics.csv")[0]
    assert "positives_per_anchor" in _csv_rows(tmp_path / "supcon" / "metrics.csv")[0]
