"""``supcon.use.onnx_export``: the optional ONNX file of an export, checked against onnxruntime."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from supcon.config import ConfigError
from supcon.use.export import export_checkpoint, load_exported_classifier


def test_onnx_matches_onnxruntime(trained, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from supcon.use.onnx_export import ONNX_FILE, run_onnx

    path = export_checkpoint(trained["linear"], tmp_path / "e", onnx=True)
    info = json.loads(path.read_text())
    assert info["onnx"]["file"] == ONNX_FILE and info["onnx"]["max_abs_diff"] <= 1e-5
    images = torch.rand(7, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = load_exported_classifier(tmp_path / "e")(images)
    torch.testing.assert_close(run_onnx(tmp_path / "e" / ONNX_FILE, images), expected, atol=1e-5, rtol=0)


def test_onnx_without_the_extra_is_a_config_error(trained, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(ConfigError, match=r"--onnx needs the \[onnx\] extra"):
        export_checkpoint(trained["pretrain"], tmp_path / "e", onnx=True)


def test_a_new_export_without_onnx_removes_the_old_onnx_file(trained, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from supcon.use.onnx_export import ONNX_FILE

    export_checkpoint(trained["pretrain"], tmp_path / "e", onnx=True)
    assert (tmp_path / "e" / ONNX_FILE).is_file()
    path = export_checkpoint(trained["pretrain"], tmp_path / "e")
    assert json.loads(path.read_text())["onnx"] is None and not (tmp_path / "e" / ONNX_FILE).exists()
