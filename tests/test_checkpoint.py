"""Checkpoints: atomic writes, safe loading, clear errors for foreign files, RNG capture."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from supcon import checkpoint as ckpt_module
from supcon import runfiles
from supcon.checkpoint import (FORMAT, VERSION, CheckpointError, capture_rng, load_checkpoint,
                                     restore_rng, save_checkpoint)


def _state(epoch: int = 1) -> dict:
    torch.manual_seed(epoch)
    model = nn.Linear(4, 2)
    return {"kind": "pretrain", "epoch": epoch, "config": {"arch": "small", "image_size": None},
            "model": {"model": model.state_dict()}, "rng": capture_rng(), "history": [{"loss": 1.5}]}


def _leftovers(folder) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name != "checkpoint.pt")


def test_round_trip_with_weights_only(tmp_path):
    path = tmp_path / "checkpoint.pt"
    state = _state()
    save_checkpoint(state, path)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["version"] == VERSION
    loaded = load_checkpoint(path, kind="pretrain")
    assert loaded["epoch"] == 1 and loaded["config"] == state["config"]
    for key, value in state["model"]["model"].items():
        assert torch.equal(loaded["model"]["model"][key], value)
    assert _leftovers(tmp_path) == []


def test_save_creates_missing_folders(tmp_path):
    path = tmp_path / "a" / "b" / "checkpoint.pt"
    save_checkpoint(_state(), path)
    assert load_checkpoint(path)["epoch"] == 1


def test_failed_save_keeps_the_previous_checkpoint_and_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(_state(1), path)
    before = path.read_bytes()

    real_save = torch.save

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial bytes of a checkpoint")
        f.flush()
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(_state(2), path)
    monkeypatch.setattr(torch, "save", real_save)

    assert path.read_bytes() == before
    assert load_checkpoint(path)["epoch"] == 1
    assert _leftovers(tmp_path) == []


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """KeyboardInterrupt (Ctrl-C mid-write) is cleaned up like any other failure."""
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(_state(1), path)

    def interrupted(obj, f, *args, **kwargs):
        f.write(b"\x00" * 100)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(_state(2), path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert _leftovers(tmp_path) == []


def test_failed_rename_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(_state(1), path)

    def broken_replace(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(runfiles.os, "replace", broken_replace)
    with pytest.raises(OSError, match="rename failed"):
        save_checkpoint(_state(2), path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert _leftovers(tmp_path) == []


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found.*nothing.pt"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_random_bytes_are_not_a_checkpoint(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(os.urandom(256))
    with pytest.raises(CheckpointError, match="noise.pt is not a readable supcon checkpoint"):
        load_checkpoint(path)


def test_truncated_checkpoint_is_reported(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(_state(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="checkpoint.pt"):
        load_checkpoint(path)


def test_foreign_torch_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"a": 1}, path)
    with pytest.raises(CheckpointError, match="foreign.pt is not a supcon checkpoint"):
        load_checkpoint(path)
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError, match="not a supcon checkpoint"):
        load_checkpoint(path)


def test_pickled_objects_are_refused(tmp_path):
    """weights_only=True: a file that needs arbitrary unpickling is refused, never executed."""

    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "version": VERSION, "obj": _Opaque()}, path)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(path)


class _Opaque:
    pass


def test_wrong_version_and_kind(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": FORMAT, "version": VERSION + 1, "kind": "pretrain"}, path)
    with pytest.raises(CheckpointError, match="version"):
        load_checkpoint(path)
    save_checkpoint({"kind": "linear", "epoch": 1}, path)
    with pytest.raises(CheckpointError, match="'linear' checkpoint"):
        load_checkpoint(path, kind=("pretrain", "ce"))
    assert load_checkpoint(path, kind="linear")["kind"] == "linear"


def test_rng_capture_and_restore_replays_the_stream(tmp_path):
    torch.manual_seed(123)
    torch.rand(5)
    state = capture_rng()
    expected = torch.rand(10)
    torch.manual_seed(999)
    # Through a file, as on resume.
    save_checkpoint({"kind": "ce", "rng": state}, tmp_path / "c.pt")
    restore_rng(load_checkpoint(tmp_path / "c.pt")["rng"])
    assert torch.equal(torch.rand(10), expected)


# ---------------------------------------------------------------------------------------------
# Every loader checks the entries it reads: a CheckpointError naming the file and the key
# ---------------------------------------------------------------------------------------------


def _supcon_model():
    from supcon.models import SupConModel, build_encoder

    return SupConModel(build_encoder("small", in_channels=1), head="mlp", feat_dim=8)


def _saved(tmp_path: Path, name: str, **state) -> Path:
    path = tmp_path / name
    save_checkpoint({"epoch": 1, "config": {"arch": "small"}, "normalization": {"mean": [0.5], "std": [0.2]},
                     **state}, path)
    return path


def _pretrain_state() -> dict:
    from supcon.models import model_signature

    model = _supcon_model()
    return {"kind": "pretrain", "signature": model_signature(model), "model": {"model": model.state_dict()}}


@pytest.mark.parametrize("loader", ["encoder_from_checkpoint", "load_supcon_model"])
@pytest.mark.parametrize("model_entry, key", [(None, r"\['model'\]"), ({}, r"\['model'\]\['model'\]")])
def test_a_pretrain_checkpoint_without_its_weights(tmp_path, loader, model_entry, key):
    state = _pretrain_state()
    if model_entry is None:
        del state["model"]
    else:
        state["model"] = model_entry
    path = _saved(tmp_path, "no_model.pt", **state)
    with pytest.raises(CheckpointError, match=rf"no_model\.pt has no {key} entry"):
        getattr(ckpt_module, loader)(path)


def test_weights_that_are_not_a_dict(tmp_path):
    path = _saved(tmp_path, "tensor.pt", **{**_pretrain_state(), "model": {"model": torch.zeros(3)}})
    with pytest.raises(CheckpointError, match=r"tensor\.pt: \['model'\]\['model'\] is a Tensor, expected a dict"):
        ckpt_module.encoder_from_checkpoint(path)
    path = _saved(tmp_path, "bad_signature.pt", **{**_pretrain_state(), "signature": [1, 2]})
    with pytest.raises(CheckpointError, match=r"bad_signature\.pt has no model signature"):
        ckpt_module.encoder_from_checkpoint(path)
    path = _saved(tmp_path, "other_arch.pt", **{**_pretrain_state(), "signature": {"arch": "vit", "in_channels": 1}})
    with pytest.raises(CheckpointError, match=r"other_arch\.pt names a model this version cannot build.*'vit'"):
        ckpt_module.encoder_from_checkpoint(path)


@pytest.mark.parametrize(
    "model_entry, key",
    [
        (None, r"has no \['model'\] entry"),
        ({"encoder": "encoder"}, r"has no \['model'\]\['classifier'\] entry"),
        ({"encoder": "encoder", "classifier": {"bias": torch.zeros(2)}},
         r"has no \['model'\]\['classifier'\]\['weight'\] entry"),
        ({"encoder": "encoder", "classifier": {"weight": torch.zeros(2)}}, r"'weight' is not a 2-D weight matrix"),
    ],
)
def test_a_fine_tuned_checkpoint_without_its_classifier(tmp_path, model_entry, key):
    from supcon.models import model_signature

    encoder = _supcon_model().encoder
    state = {"kind": "linear", "signature": model_signature(encoder)}
    if model_entry is not None:
        state["model"] = {k: encoder.state_dict() if v == "encoder" else v for k, v in model_entry.items()}
    path = _saved(tmp_path, "linear.pt", **state)
    with pytest.raises(CheckpointError, match=rf"linear\.pt.*{key}"):
        ckpt_module.load_classifier(path)


def test_a_ce_checkpoint_without_weights_or_normalisation(tmp_path):
    from supcon.models import CEModel, model_signature

    model = CEModel(_supcon_model().encoder, 3)
    good = {"kind": "ce", "signature": model_signature(model), "model": {"model": model.state_dict()}}
    assert ckpt_module.load_classifier(_saved(tmp_path, "ce.pt", **good)).classifier is not None
    with pytest.raises(CheckpointError, match=r"ce_no_model\.pt has no \['model'\]\['model'\] entry"):
        ckpt_module.load_classifier(_saved(tmp_path, "ce_no_model.pt", **{**good, "model": {"optimizer": {}}}))
    with pytest.raises(CheckpointError, match=r"ce_norm\.pt has no 'normalization' entry"):
        ckpt_module.load_classifier(_saved(tmp_path, "ce_norm.pt", **good, **{"normalization": {"mean": [0.5]}}))
