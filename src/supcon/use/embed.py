"""Representations of a dataset under a trained encoder: ``supcon embed``.

:func:`embed_dataset` runs a checkpoint's encoder (and, asked for, its normalised projection) over one
split of a dataset, or both, chunk by chunk: the images are loaded at the checkpoint's image size with
its training split's normalisation (gray <-> RGB converted to the encoder's channels), and only the
``(N, D)`` float32 outputs accumulate. :func:`write_embeddings` saves them as ``.npz`` (plain arrays:
``numpy.load`` needs no pickle) or ``.csv`` (one row per image).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import Tensor

from supcon.checkpoint import checkpoint_config
from supcon.config import ConfigError
from supcon.data import ImageDataset, load_dataset
from supcon.devices import resolve_device
from supcon.metrics import Inference, extract_features
from supcon.runfiles import write_atomic
from supcon.use.images import match_channels
from supcon.use.trained import TrainedModel, load_trained

__all__ = ["EMBED_SPLITS", "EMBED_FORMATS", "Embeddings", "embed_dataset", "check_embeddings_path", "write_embeddings"]

logger = logging.getLogger(__name__)

#: What ``--split`` may name: one split, or ``all`` (train then test).
EMBED_SPLITS: tuple[str, ...] = ("train", "test", "all")
#: Output formats, by the suffix of the output file.
EMBED_FORMATS: tuple[str, ...] = (".npz", ".csv")


@dataclass
class Embeddings:
    """One row per image, in dataset order (train before test for ``all``).

    Attributes:
        features: ``(N, D)`` float32 encoder representations.
        projections: ``(N, F)`` float32 unit-norm projections, or ``None``.
        labels: ``(N,)`` int64 class indices into ``classes``.
        splits: ``N`` split names (``"train"`` / ``"test"``).
        classes: the dataset's class names.
        paths: ``N`` file paths relative to the dataset root (folder datasets), or ``None``.
        checkpoint: the checkpoint whose encoder made them.
    """

    features: Tensor
    projections: Tensor | None
    labels: Tensor
    splits: list[str]
    classes: list[str]
    paths: list[str] | None
    checkpoint: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def embed_dataset(checkpoint: str | Path, dataset: str, split: str = "test", *, projection: bool = False,
                  device: str = "auto", batch_size: int = 256, chunk: int = 4096, skip_bad_images: bool = False,
                  on_chunk: Callable[[str, int, int], None] | None = None) -> Embeddings:
    """The encoder's representations of every image of ``split`` of ``dataset``.

    Any checkpoint with an encoder works (pretrain, CE, linear probe, fine-tune); the split uses the
    checkpoint's seed and test fraction, so the training dataset's ``test`` split is the one it was
    scored on.

    Args:
        checkpoint: a supcon ``checkpoint.pt``.
        dataset: a dataset spec (``folder:DIR``, ``npz:FILE``, ``digits``...).
        split: ``train``, ``test`` or ``all``.
        projection: also the normalised projection (pretrain checkpoints, or a linear probe's).
        device, batch_size: where and in what batches the encoder runs.
        chunk: images converted and embedded per step (each step logs a progress line).
        skip_bad_images: leave unreadable image files of a folder out instead of failing.
        on_chunk: called ``(split, done, total)`` after each chunk.

    Raises:
        ConfigError: an unknown split, a non-positive ``batch_size`` or ``chunk``.
        CheckpointError, DatasetError: the checkpoint or dataset cannot be used.
    """
    if split not in EMBED_SPLITS:
        raise ConfigError(f"split must be one of {', '.join(EMBED_SPLITS)}, got {split!r}")
    if batch_size < 1 or chunk < 1:
        raise ConfigError(f"batch_size and chunk must be positive, got {batch_size} and {chunk}")
    model = load_trained(checkpoint, projection=projection)
    how = Inference(device=resolve_device(device), batch_size=batch_size)
    cfg = checkpoint_config({"config": model.config})
    names = ("train", "test") if split == "all" else (split,)
    features, projections, labels, paths, splits = [], [], [], [], []
    classes: list[str] = []
    for name in names:  # one split's images in memory at a time
        data = load_dataset(dataset, name, image_size=model.image_size, seed=cfg.seed, test_fraction=cfg.test_fraction,
                            skip_bad_images=skip_bad_images)
        feats, projs = _embed_split(model, data, name, how, chunk, projection, on_chunk)
        features.append(feats)
        projections.append(projs)
        labels.append(data.labels)
        paths.append(data.paths)
        splits += [name] * len(data)
        classes = list(data.classes)
        del data
    return Embeddings(
        features=torch.cat(features), projections=torch.cat(projections) if projection else None,
        labels=torch.cat(labels), splits=splits, classes=classes,
        paths=[p for part in paths for p in part] if all(part is not None for part in paths) else None,
        checkpoint=str(model.path))


def _embed_split(model: TrainedModel, data: ImageDataset, split: str, how: Inference, chunk: int, projection: bool,
                 on_chunk: Callable[[str, int, int], None] | None) -> tuple[Tensor, Tensor | None]:
    """``(features (N, D), projections (N, F) or None)`` of one split, ``chunk`` images at a time."""
    encoder = model.encoder.to(how.device)
    normalize = model.normalize.to(how.device)
    head = model.head.to(how.device).eval() if projection and model.head is not None else None
    features: list[Tensor] = []
    projections: list[Tensor] = []
    total = len(data)
    for start in range(0, total, chunk):
        images = match_channels(data.images[start:start + chunk], model.channels)
        feats = extract_features(encoder, images, normalize, how)
        features.append(feats.cpu())
        if head is not None:
            with torch.no_grad():
                projections.append(head(feats).float().cpu())
        done = min(total, start + chunk)
        logger.info("embed: %d/%d images of the %s split", done, total, split)
        if on_chunk is not None:
            on_chunk(split, done, total)
    return torch.cat(features), torch.cat(projections) if head is not None else None


def check_embeddings_path(out: str | Path) -> Path:
    """``out`` as a Path, if its suffix is one of :data:`EMBED_FORMATS`.

    Raises:
        ConfigError: another suffix.
    """
    out = Path(out)
    if out.suffix.lower() not in EMBED_FORMATS:
        raise ConfigError(f"--out {out}: the suffix must be one of {', '.join(EMBED_FORMATS)}, got {out.suffix!r}")
    return out


def write_embeddings(embeddings: Embeddings, out: str | Path) -> Path:
    """Writes ``embeddings`` to ``out`` (atomically), as ``.npz`` or ``.csv`` by its suffix.

    ``.npz`` arrays: ``features`` (N, D) float32, ``projections`` (N, F) float32 (when computed),
    ``labels`` (N,) int64, ``split`` (N,) str, ``classes`` (K,) str, ``paths`` (N,) str (folder datasets),
    ``checkpoint`` () str; every array is plain (``numpy.load(out)`` needs no ``allow_pickle``).
    ``.csv`` columns: ``split``, ``path`` (folder datasets), ``label``, ``class``, ``f0``..``f{D-1}``
    and ``p0``..``p{F-1}`` (projections).

    Raises:
        ConfigError: another suffix.
    """
    out = check_embeddings_path(out)
    suffix = out.suffix.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npz":
        write_atomic(out, lambda handle: np.savez(handle, **_npz_arrays(embeddings)))
    else:
        write_atomic(out, lambda handle: _write_csv(handle, embeddings))
    return out


def _npz_arrays(emb: Embeddings) -> dict[str, np.ndarray]:
    arrays = {"features": emb.features.numpy().astype(np.float32, copy=False),
              "labels": emb.labels.numpy().astype(np.int64, copy=False),
              "split": _strings(emb.splits), "classes": _strings(emb.classes),
              "checkpoint": np.array(emb.checkpoint, dtype=str)}
    if emb.projections is not None:
        arrays["projections"] = emb.projections.numpy().astype(np.float32, copy=False)
    if emb.paths is not None:
        arrays["paths"] = _strings(emb.paths)
    return arrays


def _strings(values: list[str]) -> np.ndarray:
    """A numpy unicode array (never an object array, so it loads without pickle)."""
    return np.array(values, dtype=str) if values else np.zeros(0, dtype="<U1")


def _write_csv(handle: BinaryIO, emb: Embeddings) -> None:
    """The CSV rows, streamed to ``handle`` (never the whole text in memory)."""
    text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
    _write_rows(csv.writer(text), emb)
    text.flush()
    text.detach()


def _write_rows(writer: Any, emb: Embeddings) -> None:
    dims = emb.features.shape[1]
    proj_dims = emb.projections.shape[1] if emb.projections is not None else 0
    writer.writerow(["split", *(["path"] if emb.paths is not None else []), "label", "class",
                     *(f"f{d}" for d in range(dims)), *(f"p{d}" for d in range(proj_dims))])
    features = emb.features.tolist()
    projections = emb.projections.tolist() if emb.projections is not None else None
    for i, label in enumerate(emb.labels.tolist()):
        writer.writerow([emb.splits[i], *([emb.paths[i]] if emb.paths is not None else []), label,
                         emb.classes[label], *(f"{v:.9g}" for v in features[i]),
                         *(f"{v:.9g}" for v in (projections[i] if projections is not None else ()))])
