"""An exported model as ONNX, checked against onnxruntime (the optional ``[onnx]`` extra).

:func:`write_onnx` traces a module that takes ``(N, C, S, S)`` float images in [0, 1] (normalisation
inside) to ``DIR/model.onnx`` with a dynamic batch axis, runs it in onnxruntime on a random batch and
refuses the file unless every output is within :data:`ONNX_TOLERANCE` of PyTorch's.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from supcon.config import ConfigError

__all__ = ["ONNX_FILE", "ONNX_TOLERANCE", "write_onnx", "run_onnx"]

ONNX_FILE = "model.onnx"
#: Largest absolute difference allowed between onnxruntime's outputs and PyTorch's.
ONNX_TOLERANCE = 1e-5
_INPUT = "images"


def _require_onnx() -> Any:
    try:
        import onnx  # optional heavy dependency: only for --onnx
        import onnxruntime
    except ImportError as exc:
        raise ConfigError(f"--onnx needs the [onnx] extra (onnx and onnxruntime): pip install 'supcon[onnx]' "
                          f"({exc})") from None
    return onnx, onnxruntime


def run_onnx(path: str | Path, images: torch.Tensor) -> torch.Tensor:
    """The ONNX model at ``path`` run by onnxruntime (CPU) on float ``images (N, C, S, S)`` in [0, 1]."""
    _, onnxruntime = _require_onnx()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {_INPUT: images.float().numpy()})[0])


def write_onnx(module: nn.Module, folder: Path, channels: int, image_size: int, output: str) -> dict[str, Any]:
    """Writes ``module`` (eval mode, CPU) to ``folder/model.onnx`` and checks it with onnxruntime.

    Returns:
        The export's ``onnx`` entry: ``{"file", "input", "output", "max_abs_diff"}``.

    Raises:
        ConfigError: the extra is not installed, or onnxruntime's outputs differ from PyTorch's by
            more than :data:`ONNX_TOLERANCE`.
    """
    onnx, _ = _require_onnx()
    module = module.cpu().eval()
    path = folder / ONNX_FILE
    sample = torch.rand(4, channels, image_size, image_size, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
        torch.onnx.export(module, (sample,), str(path), dynamo=False, input_names=[_INPUT], output_names=[output],
                          dynamic_axes={_INPUT: {0: "batch"}, output: {0: "batch"}})
    onnx.checker.check_model(str(path))
    with torch.no_grad():
        expected = module(sample)
    diff = float((run_onnx(path, sample) - expected).abs().max())
    if not diff <= ONNX_TOLERANCE:
        path.unlink(missing_ok=True)
        raise ConfigError(f"the ONNX model differs from the PyTorch one by {diff:.3g} (more than {ONNX_TOLERANCE}): "
                          "not written")
    return {"file": ONNX_FILE, "input": _INPUT, "output": output, "max_abs_diff": diff}
