"""``supcon.use.export``: safetensors + JSON exports, loaded back with no pickle and no training code."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import supcon
from supcon.augment import Normalize
from supcon.checkpoint import CheckpointError, load_classifier, load_supcon_model
from supcon.config import ConfigError
from supcon.use.export import (EXPORT_JSON, EXPORT_WEIGHTS, ExportError, export_checkpoint, load_encoder,
                               load_exported_classifier, read_export)
from tiny_runs import tiny_arrays

_FRESH = textwrap.dedent("""
    import sys
    import numpy as np
    import torch
    from supcon.use.export import load_encoder, load_exported_classifier
    images = torch.from_numpy(np.load(sys.argv[1]))
    out = {}
    for kind in sys.argv[3:]:
        with torch.no_grad():
            out[kind + "_encoder"] = load_encoder(f"{sys.argv[2]}/{kind}")(images).numpy()
            if kind != "pretrain":
                out[kind + "_logits"] = load_exported_classifier(f"{sys.argv[2]}/{kind}")(images).numpy()
    np.savez(f"{sys.argv[2]}/outputs.npz", **out)
    assert not [m for m in sys.modules if m == "supcon.train" or m.startswith("supcon.train.")], "training code imported"
    print("fresh ok")
""")


def _checkpoint_outputs(kind, checkpoint, images):
    with torch.no_grad():
        if kind == "pretrain":
            model, state = load_supcon_model(checkpoint)
            return {"encoder": model.encoder(Normalize(**state["normalization"])(images.float() / 255))}
        classifier = load_classifier(checkpoint)
        return {"encoder": classifier.encoder(classifier.normalize(images.float() / 255)), "logits": classifier(images)}


def test_round_trip_in_a_fresh_process_without_training_code(trained, tmp_path):
    images = torch.from_numpy(tiny_arrays()["images_test"][:10]).unsqueeze(1)
    np.save(tmp_path / "images.npy", images.numpy())
    kinds = ["pretrain", "linear", "finetune", "ce"]
    for kind in kinds:
        export_checkpoint(trained[kind], tmp_path / kind)
    done = subprocess.run([sys.executable, "-c", _FRESH, str(tmp_path / "images.npy"), str(tmp_path), *kinds],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "fresh ok" in done.stdout, done.stderr
    with np.load(tmp_path / "outputs.npz", allow_pickle=False) as fresh:
        for kind in kinds:
            for name, expected in _checkpoint_outputs(kind, trained[kind], images).items():
                np.testing.assert_allclose(fresh[f"{kind}_{name}"], expected.numpy(), atol=1e-6, rtol=0)


def test_the_description_holds_what_rebuilds_the_model(trained, tmp_path):
    path = export_checkpoint(trained["linear"], tmp_path / "e")
    info = json.loads(path.read_text())
    assert info["kind"] == "classifier" and info["checkpoint_kind"] == "linear" and info["method"] == "supcon"
    assert info["encoder"]["arch"] == "small" and info["encoder"]["in_channels"] == 1
    assert info["input"]["channels"] == 1 and info["input"]["image_size"] == 8
    assert len(info["input"]["mean"]) == len(info["input"]["std"]) == 1
    assert info["classes"] == ["0", "1", "2", "3"] and info["supcon_version"] == supcon.__version__
    assert info["classifier"] == {"type": "probe", "in_dim": 128, "num_classes": 4}
    assert (tmp_path / "e" / EXPORT_WEIGHTS).is_file() and info["source_checkpoint"].endswith("checkpoint.pt")
    assert read_export(tmp_path / "e")["kind"] == "classifier"


def test_modules_take_uint8_or_float_and_load_without_torch_load(trained, tmp_path, monkeypatch):
    export_checkpoint(trained["ce"], tmp_path / "ce")

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load called: an export must load without pickle")

    monkeypatch.setattr(torch, "load", refuse)
    encoder, classifier = supcon.load_encoder(tmp_path / "ce"), supcon.load_classifier(tmp_path / "ce")
    assert not encoder.training and not classifier.training and classifier.classes == ["0", "1", "2", "3"]
    images = torch.from_numpy(tiny_arrays()["images_test"][:4]).unsqueeze(1)
    with torch.no_grad():
        torch.testing.assert_close(classifier(images), classifier(images.float() / 255), atol=1e-6, rtol=0)
        assert encoder(images).shape == (4, 128)


def test_a_folder_that_is_not_an_export_says_what_is_missing(trained, tmp_path):
    with pytest.raises(ExportError, match=f"is not a supcon export: it has no {EXPORT_JSON}"):
        load_encoder(tmp_path)
    with pytest.raises(ExportError, match="no such folder"):
        load_encoder(tmp_path / "nowhere")
    export_checkpoint(trained["pretrain"], tmp_path / "e")
    with pytest.raises(ExportError, match="is an encoder export"):
        load_exported_classifier(tmp_path / "e")
    (tmp_path / "e" / EXPORT_WEIGHTS).unlink()
    with pytest.raises(ExportError, match=f"the weights file .*{EXPORT_WEIGHTS} named by {EXPORT_JSON} is missing"):
        load_encoder(tmp_path / "e")
    (tmp_path / "e" / EXPORT_JSON).write_text('{"format": "supcon-export", "version": 1, "kind": "encoder"}')
    with pytest.raises(ExportError, match="lacks the entries weights, encoder, input, classes"):
        load_encoder(tmp_path / "e")
    (tmp_path / "e" / EXPORT_JSON).write_text("{not json")
    with pytest.raises(CheckpointError, match="not readable JSON"):
        load_encoder(tmp_path / "e")


def test_an_out_that_is_a_file_is_refused(trained, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file; the export is a folder"):
        export_checkpoint(trained["pretrain"], tmp_path / "file")
