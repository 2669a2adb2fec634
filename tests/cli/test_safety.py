"""The command line never loses a user's files and never trains on silently wrong settings (issue 11).

Each case runs ``supcon`` in process and asserts exit code 2 and one line on stderr without a
traceback; the lock is tested with a second process that holds the run folder.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tiny_runs import TINY_SETTINGS, fail_writability_probe, flags_for
from supcon import runfiles
from supcon.cli import main
from supcon.config import load_config


def _fails(argv: list, capsys, *needles: str) -> str:
    """Runs ``supcon argv``: exit code 2 and a one-line error naming every needle."""
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    return err


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def pretrained_run(tiny_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished `supcon pretrain` folder; tests copy it before changing it."""
    out = tmp_path_factory.mktemp("safety") / "pre"
    assert main(["pretrain", "--out", str(out), *flags_for({"dataset": f"npz:{tiny_npz}", **TINY_SETTINGS})]) == 0
    return out


@pytest.fixture
def pre(pretrained_run: Path, tmp_path: Path) -> Path:
    """A copy of the pretraining run, this test's to change."""
    return Path(shutil.copytree(pretrained_run, tmp_path / "pre"))


# ---------------------------------------------------------------------------------------------
# --overwrite deletes only what supcon wrote
# ---------------------------------------------------------------------------------------------


def test_overwrite_refuses_a_folder_that_holds_no_run(tmp_path, tiny_flags, capsys):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("years of work")
    for command in ("pretrain", "train-ce", "run"):
        _fails([command, "--out", thesis, "--overwrite", *tiny_flags()], capsys, str(thesis),
               "not a supcon run folder", "thesis.tex")
    assert _tree(thesis) == {"thesis.tex": b"years of work"}


def test_overwrite_refuses_an_out_that_holds_the_dataset(tmp_path, tiny_npz, tiny_flags, capsys):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(tiny_npz, data / "tiny.npz")
    before = _tree(data)
    _fails(["train-ce", "--out", data, "--overwrite", *tiny_flags(dataset=f"npz:{data / 'tiny.npz'}")], capsys,
           f"--out {data} holds {data / 'tiny.npz'}, an input of this run")
    # --out equal to a folder dataset, even when that folder is a supcon run
    assert main(["train-ce", "--out", str(data), *tiny_flags(dataset=f"npz:{data / 'tiny.npz'}")]) == 0
    _fails(["train-ce", "--out", data, "--overwrite", *tiny_flags(dataset=f"folder:{data}")], capsys,
           f"--out {data} is {data}, an input of this run")
    assert _tree(data)["tiny.npz"] == before["tiny.npz"]


def test_linear_overwrite_never_deletes_the_checkpoint_it_reads(pre, tiny_flags, capsys):
    checkpoint = pre / "checkpoint.pt"
    before = checkpoint.read_bytes()
    _fails(["linear", "--checkpoint", checkpoint, "--out", pre, "--overwrite", *tiny_flags()], capsys,
           f"holds {checkpoint}, an input of this run", "choose another --out")
    assert checkpoint.read_bytes() == before


def test_overwrite_never_deletes_the_config_file(pre, tiny_flags, capsys):
    config = pre / "config.yaml"
    before = config.read_bytes()
    _fails(["pretrain", "--config", config, "--out", pre, "--overwrite", *tiny_flags()], capsys,
           f"holds {config}, an input of this run")
    assert config.read_bytes() == before


def test_pretrain_overwrite_refuses_a_linear_run_nested_in_it(pre, tiny_flags, capsys):
    probe = pre / "linear"
    assert main(["linear", "--checkpoint", str(pre / "checkpoint.pt"), "--out", str(probe), *tiny_flags()]) == 0
    before = _tree(pre)
    _fails(["pretrain", "--out", pre, "--overwrite", *tiny_flags()], capsys,
           f"{probe} is a supcon linear run of its own", "move or delete it yourself")
    assert _tree(pre) == before


def test_run_overwrite_replaces_its_own_runs_and_keeps_the_users_files(tmp_path, tiny_flags, capsys):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--methods", "ce", *tiny_flags()]) == 0
    (out / "notes.md").write_text("mine")
    (out / "ce" / "stale.txt").write_text("mine too")
    first = (out / "ce" / "checkpoint.pt").read_bytes()
    assert main(["run", "--out", str(out), "--overwrite", "--methods", "ce", *tiny_flags(seed=1)]) == 0
    assert (out / "notes.md").read_text() == "mine" and (out / "ce" / "stale.txt").read_text() == "mine too"
    assert (out / "ce" / "checkpoint.pt").read_bytes() != first
    assert load_config(out / "ce" / "config.yaml").seed == 1


# ---------------------------------------------------------------------------------------------
# One run per folder: the lock
# ---------------------------------------------------------------------------------------------


_HOLDER = """
import sys
from supcon.runfiles import claim_run_dir
with claim_run_dir(sys.argv[1], sys.argv[2], resume=sys.argv[3] == "resume"):
    print("holding", flush=True)
    sys.stdin.readline()
"""


def _hold(folder: Path, kind: str = "pretrain", resume: bool = False) -> subprocess.Popen:
    """Another process that claims ``folder`` and holds it until its stdin closes."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder), kind, "resume" if resume else "new"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def _release(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0


def test_a_second_run_on_a_live_out_fails_clearly(tmp_path, tiny_flags, capsys):
    out = tmp_path / "run"
    holder = _hold(out)
    try:
        for extra in ([], ["--overwrite"], ["--auto-resume"]):
            _fails(["pretrain", "--out", out, *extra, *tiny_flags()], capsys,
                   f"another supcon run (pid {holder.pid}) is using {out}")
        assert not (out / "checkpoint.pt").exists()
    finally:
        _release(holder)
    assert main(["pretrain", "--out", str(out), *tiny_flags()]) == 0  # free once the first one ends


def test_overwrite_while_another_run_is_live_deletes_nothing(pre, tiny_flags, capsys):
    holder = _hold(pre, resume=True)
    try:
        before = _tree(pre)
        assert before[runfiles.RUN_LOCK] == f"{holder.pid}\n".encode()
        _fails(["pretrain", "--out", pre, "--overwrite", *tiny_flags()], capsys, f"(pid {holder.pid})")
        _fails(["train-ce", "--out", pre, "--auto-resume", *tiny_flags()], capsys, f"(pid {holder.pid})")
        assert _tree(pre) == before
    finally:
        _release(holder)


def test_the_lock_of_a_killed_run_is_no_obstacle(pre, tiny_flags):
    holder = _hold(pre, resume=True)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    assert (pre / runfiles.RUN_LOCK).is_file()  # left behind, but no longer locked
    assert main(["pretrain", "--out", str(pre), "--resume", *tiny_flags(epochs=2)]) == 0
    assert torch.load(pre / "checkpoint.pt", weights_only=True)["epoch"] == 2
    assert not (pre / runfiles.RUN_LOCK).exists()


# ---------------------------------------------------------------------------------------------
# --resume, checkpoints of another model, unwritable folders
# ---------------------------------------------------------------------------------------------


def test_resume_with_other_settings_names_them(pre, tiny_flags, capsys):
    config = (pre / "config.yaml").read_text()
    _fails(["pretrain", "--out", pre, "--resume", *tiny_flags(epochs=2, lr=0.2, temperature=0.5)], capsys,
           "--resume with settings that differ from the run's (lr 0.05 -> 0.2, temperature 0.1 -> 0.5)",
           str(pre / "config.yaml"))
    assert (pre / "config.yaml").read_text() == config
    assert main(["pretrain", "--out", str(pre), "--resume", *tiny_flags(epochs=2)]) == 0
    assert load_config(pre / "config.yaml").epochs == 2  # the change is recorded


def test_a_probe_does_not_resume_onto_an_encoder_trained_further(pre, tiny_flags, capsys):
    probe = pre / "linear"
    assert main(["linear", "--checkpoint", str(pre / "checkpoint.pt"), "--out", str(probe), *tiny_flags()]) == 0
    assert main(["pretrain", "--out", str(pre), "--resume", *tiny_flags(epochs=2)]) == 0
    _fails(["linear", "--checkpoint", pre / "checkpoint.pt", "--out", probe, "--resume",
            *tiny_flags(linear_epochs=2)], capsys, "probes epoch 1 of", "which now holds epoch 2")


def test_run_resume_with_more_epochs_probes_the_new_encoder(tmp_path, tiny_flags):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--methods", "supcon", *tiny_flags()]) == 0
    assert main(["run", "--out", str(out), "--methods", "supcon", "--resume", *tiny_flags(epochs=2)]) == 0
    probe = torch.load(out / "supcon" / "linear" / "checkpoint.pt", weights_only=True)
    assert probe["source_epoch"] == 2


@pytest.mark.parametrize("flags, needle", [
    ({"arch": "resnet18"}, "--arch resnet18 (the checkpoint's: small)"),
    ({"feat_dim": 32}, "--feat-dim 32 (the checkpoint's: 16)"),
    ({"head": "linear"}, "--head linear (the checkpoint's: mlp)"),
])
def test_a_model_flag_that_contradicts_the_checkpoint_is_an_error(flags, needle, pre, tmp_path, tiny_flags,
                                                                  tiny_npz, capsys):
    checkpoint = pre / "checkpoint.pt"
    for command in (["linear", "--out", tmp_path / "l"], ["knn"]):
        _fails([*command, "--checkpoint", checkpoint, *tiny_flags(**flags)], capsys, str(checkpoint), needle,
               "decides the model")
    config = tmp_path / "c.yaml"  # a --config key is as explicit as a flag
    config.write_text("".join(f"{k}: {v}\n" for k, v in flags.items()))
    _fails(["linear", "--checkpoint", checkpoint, "--out", tmp_path / "l", "--config", config,
            *_flags_without(tiny_npz, *flags)], capsys, needle)
    assert not (tmp_path / "l").exists()


def _flags_without(tiny_npz: Path, *keys: str) -> list[str]:
    return flags_for({"dataset": f"npz:{tiny_npz}", **{k: v for k, v in TINY_SETTINGS.items() if k not in keys}})


def test_the_checkpoint_decides_the_model_of_a_probe(pre, tmp_path, tiny_npz):
    flags = _flags_without(tiny_npz, "arch", "feat_dim")
    assert main(["linear", "--checkpoint", str(pre / "checkpoint.pt"), "--out", str(tmp_path / "l"), *flags]) == 0
    cfg = load_config(tmp_path / "l" / "config.yaml")
    assert (cfg.arch, cfg.feat_dim) == ("small", 16)  # not the defaults resnet18 and 128


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
def test_an_unwritable_out_fails_before_training(code, pre, tiny_flags, capsys, monkeypatch):
    fail_writability_probe(monkeypatch, code)
    before = _tree(pre)
    _fails(["pretrain", "--out", pre, "--resume", *tiny_flags(epochs=2)], capsys,
           f"cannot write to run directory {pre}: {os.strerror(code)}")
    _fails(["train-ce", "--out", pre.parent / "new", *tiny_flags()], capsys, "cannot write to run directory")
    assert _tree(pre) == before  # not one more epoch


def test_no_temp_file_survives_a_resumed_run(pre, tiny_flags):
    (pre / ".checkpoint.pt.x7y8.tmp").write_bytes(b"killed mid-write")
    (pre / ".metrics.csv.q1.tmp").write_bytes(b"killed mid-write")
    assert main(["pretrain", "--out", str(pre), "--resume", *tiny_flags()]) == 0
    assert not [p.name for p in pre.iterdir() if p.name.endswith(".tmp")]
