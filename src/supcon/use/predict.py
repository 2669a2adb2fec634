"""Class predictions for loose image files: ``supcon predict``.

:func:`predict_images` decodes the files the way the classifier's training images were decoded
(:mod:`supcon.use.images`), in chunks, and returns one :class:`Prediction` per file: the top class,
its softmax probability and the top ``k``; a file that cannot be read is a row with its ``error``,
never a failure of the whole call. :func:`write_predictions` writes them as CSV.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from supcon.config import ConfigError
from supcon.data.decode import ImageDecoder
from supcon.devices import resolve_device
from supcon.metrics import Inference, forward_batches
from supcon.runfiles import write_csv_atomic
from supcon.use.images import decode_images, list_image_files
from supcon.use.trained import load_trained, require_classifier

__all__ = ["Prediction", "predict_images", "prediction_columns", "check_predictions_path", "write_predictions"]

logger = logging.getLogger(__name__)


@dataclass
class Prediction:
    """One image's prediction (or why there is none).

    Attributes:
        path: the image file.
        top: ``(class name, probability)`` pairs, most probable first (empty when ``error`` is set).
        error: why the file could not be read, else ``""``.
    """

    path: str
    top: list[tuple[str, float]] = field(default_factory=list)
    error: str = ""

    @property
    def label(self) -> str:
        """The predicted class name (``""`` for an unreadable file)."""
        return self.top[0][0] if self.top else ""

    @property
    def probability(self) -> float | None:
        """The predicted class's softmax probability (``None`` for an unreadable file)."""
        return self.top[0][1] if self.top else None


def predict_images(checkpoint: str | Path, images: Sequence[str | Path], *, top_k: int = 5, device: str = "auto",
                   batch_size: int = 256, chunk: int = 1024,
                   on_chunk: Callable[[int, int], None] | None = None) -> list[Prediction]:
    """Predictions of a classifier checkpoint for image files and folders (folders walked, sorted).

    Each image is converted to the checkpoint's channels (RGB <-> gray), its shorter side resized to
    the training image size and centre-cropped, exactly as a ``folder:`` dataset is read.

    Args:
        checkpoint: a linear-probe, fine-tune or CE ``checkpoint.pt``.
        images: image files and folders of them.
        top_k: classes per row (capped at the number of classes).
        device, batch_size: where and in what batches the classifier runs.
        chunk: files decoded and classified per step (each step logs a progress line).
        on_chunk: called ``(done, total)`` after each chunk.

    Raises:
        CheckpointError: not a classifier checkpoint (a pretrain checkpoint says which command fits).
        ConfigError: no image files, a missing input, ``top_k`` / ``batch_size`` / ``chunk`` below 1.
    """
    if min(top_k, batch_size, chunk) < 1:
        raise ConfigError(f"top_k, batch_size and chunk must be positive, got {top_k}, {batch_size} and {chunk}")
    model = load_trained(checkpoint)
    classifier = torch.nn.Sequential(model.encoder, require_classifier(model, "predict"))
    files = list_image_files(images)
    how = Inference(device=resolve_device(device), batch_size=batch_size)
    classifier.to(how.device)
    normalize = model.normalize.to(how.device)
    k = min(top_k, len(model.classes))
    rows: list[Prediction] = []
    with ImageDecoder() as decoder:
        for start in range(0, len(files), chunk):
            batch = files[start:start + chunk]
            pixels, failures = decode_images(batch, model.channels, model.image_size, decoder)
            readable = [i for i in range(len(batch)) if i not in failures]
            logits = torch.cat(list(forward_batches(classifier, pixels[readable], normalize, how)) or
                               [torch.zeros(0, len(model.classes))])
            probs, index = logits.softmax(1).cpu().topk(k, dim=1)
            top = {i: [(model.classes[c], p) for c, p in zip(index[row].tolist(), probs[row].tolist())]
                   for row, i in enumerate(readable)}
            rows.extend(Prediction(str(path), top.get(i, []), failures.get(i, "")) for i, path in enumerate(batch))
            logger.info("predict: %d/%d images", start + len(batch), len(files))
            if on_chunk is not None:
                on_chunk(start + len(batch), len(files))
    return rows


def prediction_columns(top_k: int) -> list[str]:
    """CSV columns: ``path``, ``class``, ``probability``, ``top{r}_class`` / ``top{r}_probability``, ``error``."""
    ranks = [f"top{r}_{what}" for r in range(1, top_k + 1) for what in ("class", "probability")]
    return ["path", "class", "probability", *ranks, "error"]


def check_predictions_path(out: str | Path) -> Path:
    """``out`` as a Path, if it ends in ``.csv``.

    Raises:
        ConfigError: another suffix.
    """
    out = Path(out)
    if out.suffix.lower() != ".csv":
        raise ConfigError(f"--out {out}: predictions are written as CSV, the name must end in .csv")
    return out


def write_predictions(predictions: Sequence[Prediction], out: str | Path, top_k: int) -> Path:
    """Writes one CSV row per prediction (:func:`prediction_columns`) to ``out`` atomically.

    Raises:
        ConfigError: ``out`` does not end in ``.csv``.
    """
    out = check_predictions_path(out)
    rows: list[dict[str, Any]] = []
    for pred in predictions:
        row: dict[str, Any] = {"path": pred.path, "class": pred.label, "error": pred.error,
                               "probability": "" if pred.probability is None else f"{pred.probability:.6g}"}
        for rank, (name, prob) in enumerate(pred.top, start=1):
            row[f"top{rank}_class"], row[f"top{rank}_probability"] = name, f"{prob:.6g}"
        rows.append(row)
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = prediction_columns(max((len(p.top) for p in predictions), default=0) or top_k)
    write_csv_atomic(out, rows, columns)
    return out
