"""A trained encoder (or classifier) as a folder any program can load: ``supcon export``.

:func:`export_checkpoint` writes ``DIR/weights.safetensors`` (the weights, normalisation included) and
``DIR/supcon_export.json`` (everything needed to rebuild the model and its preprocessing: the
encoder's architecture signature, channels, image size, normalisation mean and std, and for
classifiers the class names and the classifier's type and shape), optionally ``DIR/model.onnx``.
:func:`load_encoder` and :func:`load_exported_classifier` rebuild ready modules from such a folder
with no pickle (JSON and safetensors only) and without the training code: they take ``(N, C, S, S)``
uint8 images in 0..255 or float images in [0, 1] at the exported size ``S`` and normalise them.

Layout of ``supcon_export.json``::

    {"format": "supcon-export", "version": 1, "kind": "encoder" | "classifier",
     "supcon_version": "...", "source_checkpoint": "...", "checkpoint_kind": "pretrain" | "ce" | "linear",
     "method": "supcon" | ..., "weights": "weights.safetensors",
     "encoder": {"arch", "in_channels", "stem", "width", "out_dim"},
     "input": {"channels", "image_size", "mean", "std", "layout": "NCHW", "values": "..."},
     "classes": [...], "classifier": {"type": "probe" | "linear", "in_dim", "num_classes"} | null,
     "onnx": {"file", "input", "output", "max_abs_diff"} | null}
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import safetensors.torch
from torch import Tensor, nn

from supcon.augment import Normalize, to_float_images
from supcon.checkpoint import CheckpointError, ImageClassifier, encoder_from_signature, load_weights
from supcon.config import ConfigError
from supcon.models import LinearClassifier, ProbeClassifier, model_signature
from supcon.runfiles import write_atomic, write_json_atomic
from supcon.use.onnx_export import ONNX_FILE, write_onnx
from supcon.use.trained import load_trained

__all__ = ["EXPORT_JSON", "EXPORT_WEIGHTS", "EXPORT_FORMAT", "ExportError", "ImageEncoder", "export_checkpoint",
           "read_export", "load_encoder", "load_exported_classifier"]

EXPORT_JSON = "supcon_export.json"
EXPORT_WEIGHTS = "weights.safetensors"
EXPORT_FORMAT = "supcon-export"
_VERSION = 1
_CLASSIFIER_TYPES: dict[str, type[nn.Module]] = {"probe": ProbeClassifier, "linear": LinearClassifier}


class ExportError(CheckpointError):
    """A folder that is not a complete supcon export; the message says what is missing."""


class ImageEncoder(nn.Module):
    """``images -> representations`` with the training split's normalisation built in.

    Args:
        encoder: ``(B, C, S, S)`` normalised float images -> ``(B, D)``.
        mean, std: per-channel normalisation of the training split.
        info: the export's description (``supcon_export.json``).

    Shapes:
        ``forward``: ``(B, C, S, S)`` uint8 in 0..255 or float in [0, 1] -> ``(B, D)``.
    """

    def __init__(self, encoder: nn.Module, mean: list[float] | tuple[float, ...], std: list[float] | tuple[float, ...],
                 info: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.encoder = encoder
        self.info: dict[str, Any] = dict(info or {})

    def forward(self, images: Tensor) -> Tensor:
        x = to_float_images(images).to(self.normalize.mean.dtype)
        return self.encoder(self.normalize(x))


def _version() -> str:
    try:
        return importlib.metadata.version("supcon")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def export_checkpoint(checkpoint: str | Path, out: str | Path, *, onnx: bool = False) -> Path:
    """Exports a checkpoint's encoder (pretrain) or classifier (CE, linear probe, fine-tune) to ``out``.

    Args:
        checkpoint: a supcon ``checkpoint.pt``.
        out: the export folder (created; an earlier export there is replaced, its ONNX file removed).
        onnx: also write ``model.onnx`` (float [0, 1] input), checked against onnxruntime to 1e-5;
            needs the ``[onnx]`` extra.

    Returns:
        The path of ``supcon_export.json``.

    Raises:
        CheckpointError: the checkpoint cannot be read. ConfigError: ``out`` is a file, ``onnx`` without
        the extra, or an ONNX model that does not match the PyTorch one.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; the export is a folder")
    model = load_trained(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    mean, std = model.normalize.mean.flatten().tolist(), model.normalize.std.flatten().tolist()
    info: dict[str, Any] = {
        "format": EXPORT_FORMAT, "version": _VERSION, "supcon_version": _version(),
        "kind": "encoder" if model.classifier is None else "classifier",
        "source_checkpoint": str(Path(checkpoint).resolve()), "checkpoint_kind": model.kind, "method": model.method,
        "weights": EXPORT_WEIGHTS, "encoder": model_signature(model.encoder),
        "input": {"channels": model.channels, "image_size": model.image_size, "mean": mean, "std": std,
                  "layout": "NCHW", "values": "uint8 0..255 or float 0..1; normalised by the model"},
        "classes": list(model.classes), "classifier": None, "onnx": None,
    }
    if model.classifier is None:
        module: nn.Module = ImageEncoder(model.encoder, mean, std, info)
    else:
        info["classifier"] = _classifier_info(model.classifier, checkpoint)
        module = ImageClassifier(model.encoder, model.classifier, mean, std, info)
    module.eval()
    weights = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    payload = safetensors.torch.save(weights, metadata={"format": EXPORT_FORMAT})
    write_atomic(out / EXPORT_WEIGHTS, lambda handle: handle.write(payload))
    (out / ONNX_FILE).unlink(missing_ok=True)  # never a stale ONNX file of an earlier export
    if onnx:
        info["onnx"] = write_onnx(module, out, model.channels, model.image_size,
                                  "features" if model.classifier is None else "logits")
    write_json_atomic(out / EXPORT_JSON, info, sort_keys=False)
    return out / EXPORT_JSON


def _classifier_info(classifier: nn.Module, checkpoint: str | Path) -> dict[str, Any]:
    kind = next((name for name, cls in _CLASSIFIER_TYPES.items() if type(classifier) is cls), None)
    if kind is None:
        raise CheckpointError(f"{checkpoint}: its classifier is a {type(classifier).__name__}, which cannot be exported")
    return {"type": kind, "in_dim": int(classifier.in_dim), "num_classes": int(classifier.num_classes)}


def read_export(folder: str | Path) -> dict[str, Any]:
    """The description (``supcon_export.json``) of an export folder, checked to be complete.

    Raises:
        ExportError: no such folder, no or an unreadable ``supcon_export.json``, missing entries or a
            missing weights file; the message says which.
    """
    folder = Path(folder)
    what = f"{folder} is not a supcon export"
    hint = "write one with `supcon export --checkpoint CHECKPOINT --out FOLDER`"
    if not folder.is_dir():
        raise ExportError(f"{what}: no such folder ({hint})")
    path = folder / EXPORT_JSON
    if not path.is_file():
        raise ExportError(f"{what}: it has no {EXPORT_JSON} ({hint})")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(info, dict) or info.get("format") != EXPORT_FORMAT:
        raise ExportError(f"{what}: {path} has no 'format: {EXPORT_FORMAT}' entry")
    if info.get("version") != _VERSION:
        raise ExportError(f"{path} has export version {info.get('version')!r}, this supcon reads {_VERSION}")
    missing = [k for k in ("kind", "weights", "encoder", "input", "classes") if k not in info]
    missing += [f"input.{k}" for k in ("channels", "image_size", "mean", "std")
                if isinstance(info.get("input"), Mapping) and k not in info["input"]]
    if missing or not isinstance(info.get("input"), Mapping):
        raise ExportError(f"{path} lacks the entries {', '.join(missing) or 'input'}: the export is incomplete")
    if not (folder / str(info["weights"])).is_file():
        raise ExportError(f"{what}: the weights file {folder / str(info['weights'])} named by {EXPORT_JSON} is missing")
    return info


def _weights(folder: Path, info: Mapping[str, Any]) -> dict[str, Tensor]:
    path = folder / str(info["weights"])
    try:
        return safetensors.torch.load_file(path)
    except Exception as exc:  # safetensors raises its own error types on damaged files
        raise ExportError(f"{path} is not a readable safetensors file: {exc}") from None


def load_encoder(folder: str | Path) -> ImageEncoder:
    """The exported encoder, ``(N, C, S, S)`` uint8 or [0, 1] float images -> ``(N, D)``, in eval mode.

    Works on encoder and classifier exports (a classifier's encoder); ``.info`` holds the export's
    description (channels, image size, classes...).

    Raises:
        ExportError: ``folder`` is not a complete export (the message says what is missing), or its
            weights do not fit the architecture it names.
    """
    folder = Path(folder)
    info = read_export(folder)
    encoder = encoder_from_signature(info["encoder"], folder / EXPORT_JSON)
    module = ImageEncoder(encoder, info["input"]["mean"], info["input"]["std"], info)
    weights = {k: v for k, v in _weights(folder, info).items() if not k.startswith("classifier.")}
    load_weights(module, weights, folder / str(info["weights"]), "exported encoder")
    return module.eval()


def load_exported_classifier(folder: str | Path) -> ImageClassifier:
    """The exported classifier, ``(N, C, S, S)`` uint8 or [0, 1] float images -> ``(N, K)`` logits, in eval mode.

    ``.classes`` names the logits; ``.info`` holds the export's description.

    Raises:
        ExportError: ``folder`` is not a complete export, or an encoder export (no classifier).
    """
    folder = Path(folder)
    info = read_export(folder)
    spec = info.get("classifier")
    if info["kind"] != "classifier" or not isinstance(spec, Mapping):
        raise ExportError(f"{folder} is an encoder export (no classifier): load it with load_encoder, or export a "
                          "linear-probe, fine-tune or CE checkpoint")
    if spec.get("type") not in _CLASSIFIER_TYPES:
        raise ExportError(f"{folder / EXPORT_JSON}: classifier type {spec.get('type')!r} is not one of "
                          f"{', '.join(_CLASSIFIER_TYPES)}")
    encoder = encoder_from_signature(info["encoder"], folder / EXPORT_JSON)
    classifier = _CLASSIFIER_TYPES[spec["type"]](int(spec["in_dim"]), int(spec["num_classes"]))
    module = ImageClassifier(encoder, classifier, info["input"]["mean"], info["input"]["std"], info)
    load_weights(module, _weights(folder, info), folder / str(info["weights"]), "exported classifier")
    return module.eval()
