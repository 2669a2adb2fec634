"""Out-of-distribution detection with a trained encoder: ``supcon ood``.

The pieces are re-exported here: :func:`fit_bank` + :func:`ood_scores` (scores of features you already
have) and :func:`ood_metrics` (AUROC, AUPR, FPR at 95 % TPR of any two score arrays).

:func:`run_ood` embeds three sets of images with a checkpoint's encoder (:func:`supcon.use.embed_dataset`):
the in-distribution **train** split (the class means, tied covariance and kNN memory of
:mod:`supcon.use.ood_scoring`), the in-distribution **test** split (the positives) and the OOD dataset's
**test** split (by default; the negatives). Both datasets are split with the checkpoint's seed and test
fraction, so the training dataset's test split is the one its accuracy was measured on. The OOD images
are adapted to the encoder's input the way every dataset is: shorter side resized to the checkpoint's
image size and centre-cropped, gray repeated to RGB or RGB reduced to luma.

Each score (higher = more in-distribution) gets the metrics of :mod:`supcon.use.ood_curves`.
:func:`write_ood` writes ``ood.json``, ``ood.csv`` (one row per score) and ``ood_scores.npz`` (the raw
scores); :func:`ood_rows` gives a table's header and rows for :func:`supcon.report.tables.markdown_table`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from supcon.checkpoint import CheckpointError, checkpoint_config, load_checkpoint
from supcon.config import ConfigError
from supcon.metrics import accuracy
from supcon.runfiles import write_atomic, write_csv_atomic, write_json_atomic
from supcon.use.embed import embed_dataset
from supcon.use.export import EXPORT_JSON
from supcon.use.ood_curves import OOD_METRICS, ood_metrics
from supcon.use.ood_scoring import CLASSIFIER_SCORES, DEFAULT_K, OOD_SCORES, FeatureBank, fit_bank, ood_scores
from supcon.use.trained import TrainedModel, load_trained

__all__ = ["OOD_JSON", "OOD_CSV", "OOD_MD", "OOD_SCORES_NPZ", "OOD_SPLITS", "OODResult", "run_ood", "parse_scores",
           "write_ood", "read_ood", "ood_rows", "model_label", "OOD_SCORES", "DEFAULT_K", "FeatureBank", "fit_bank",
           "ood_scores", "ood_metrics"]

logger = logging.getLogger(__name__)

OOD_JSON = "ood.json"
OOD_CSV = "ood.csv"
OOD_MD = "ood.md"
OOD_SCORES_NPZ = "ood_scores.npz"
#: Which split of the OOD dataset may be scored (``all`` = train then test).
OOD_SPLITS: tuple[str, ...] = ("test", "train", "all")

#: What a checkpoint kind is called in tables.
_KIND_NAMES = {"pretrain": "encoder", "ce": "CE", "linear": "linear probe"}


@dataclass
class OODResult:
    """Scores and metrics of one checkpoint on one in-distribution / OOD pair.

    Attributes:
        summary: what :data:`OOD_JSON` holds: checkpoint, kind, method, datasets, splits, counts, k,
            ``metrics`` ``{score: {auroc, aupr_in, aupr_out, fpr95, in_mean, ood_mean}}`` and ``notes``.
        in_scores, ood_scores: ``{score: (N,) float64}`` of the in-distribution test split and the OOD images.
    """

    summary: dict[str, Any]
    in_scores: dict[str, np.ndarray] = field(default_factory=dict)
    ood_scores: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        return self.summary["metrics"]


def parse_scores(text: str | Sequence[str] | None) -> list[str] | None:
    """``"cosine,knn"`` (or a list) -> the names, checked; ``None`` or ``"all"`` -> ``None`` (every score
    the checkpoint supports).

    Raises:
        ConfigError: an unknown or repeated name, naming ``--scores``.
    """
    if text is None or text == "all":
        return None
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else [str(n).strip() for n in text]
    unknown = [n for n in names if n not in OOD_SCORES]
    if unknown or not names or len(set(names)) != len(names):
        raise ConfigError(f"--scores must be 'all' or distinct comma-separated names from {', '.join(OOD_SCORES)}, "
                          f"got {text!r}")
    return names


def _check_checkpoint(path: Path) -> None:
    """Refuses what has no representation to score, naming what it is and what to pass instead."""
    if path.is_dir():
        if (path / "checkpoint.pt").is_file():
            raise CheckpointError(f"{path} is a run folder: pass its checkpoint, {path / 'checkpoint.pt'}")
        if (path / EXPORT_JSON).is_file():
            raise CheckpointError(f"{path} is a `supcon export` folder: `supcon ood` reads checkpoints; pass the "
                                  "checkpoint.pt it was exported from")
        raise CheckpointError(f"{path} is a folder, not a checkpoint.pt")
    kind = load_checkpoint(path).get("kind")
    if kind not in _KIND_NAMES:
        raise CheckpointError(f"{path} is a {kind!r} checkpoint, which holds no encoder representation: `supcon ood` "
                              "needs a pretrain, CE, linear-probe or fine-tune checkpoint.pt")


def _classifier_names(model: TrainedModel, asked: list[str] | None) -> tuple[list[str], list[str]]:
    """The scores to compute and the notes on what was left out."""
    if model.classifier is not None:
        return (list(asked) if asked is not None else list(OOD_SCORES)), []
    wanted = [n for n in (asked or ()) if n in CLASSIFIER_SCORES]
    fits = (f"train a linear probe with `supcon linear --checkpoint {model.path}` and pass its checkpoint for "
            f"{' and '.join(CLASSIFIER_SCORES)}")
    if wanted:
        raise ConfigError(f"--scores {','.join(wanted)}: {model.path} is a {model.kind} checkpoint (encoder and "
                          f"projection head, no classifier); {fits}, or leave them out")
    names = [n for n in (asked if asked is not None else OOD_SCORES) if n not in CLASSIFIER_SCORES]
    return names, [f"{' and '.join(CLASSIFIER_SCORES)} skipped: a {model.kind} checkpoint has no classifier; {fits}"]


@torch.no_grad()
def _logits(model: TrainedModel, features: Tensor, batch_size: int) -> Tensor:
    classifier = model.classifier.eval()  # type: ignore[union-attr]
    parts = [classifier(features[i:i + batch_size]).float() for i in range(0, features.shape[0], batch_size)]
    return torch.cat(parts)


def run_ood(checkpoint: str | Path, ood_dataset: str, in_dataset: str | None = None, *, ood_split: str = "test",
            scores: Sequence[str] | None = None, k: int = DEFAULT_K, device: str = "auto", batch_size: int = 256,
            skip_bad_images: bool = False,
            on_chunk: Callable[[str, int, int], None] | None = None) -> OODResult:
    """OOD scores and metrics of a checkpoint's encoder (and classifier) on an in-distribution / OOD pair.

    Args:
        checkpoint: a pretrain, CE, linear-probe or fine-tune ``checkpoint.pt``. A pretrain checkpoint
            gets the representation scores only (``msp`` and ``energy`` are skipped, with a note).
        ood_dataset: the OOD dataset's spec (``folder:DIR``, ``idx:DIR``, ``digits``...).
        in_dataset: the in-distribution dataset's spec; default: the one the checkpoint was trained on.
        ood_split: which split of the OOD dataset to score: ``test``, ``train`` or ``all``.
        scores: names from :data:`~supcon.use.ood_scoring.OOD_SCORES`; default: every one the checkpoint has.
        k: the kNN score's neighbour (at most the in-distribution training split's size).
        device, batch_size: where and in what batches the encoder runs.
        skip_bad_images: leave unreadable folder images out.
        on_chunk: ``(part, done, total)`` after each chunk embedded, ``part`` in ``"in-train"``,
            ``"in-test"``, ``"ood"``.

    Raises:
        CheckpointError: a file or folder without an encoder representation (says what it is and what fits).
        ConfigError: a bad ``ood_split``, ``k`` or score name, a classifier score asked of a pretrain checkpoint.
        DatasetError: a dataset that cannot be read.
    """
    if ood_split not in OOD_SPLITS:
        raise ConfigError(f"--ood-split must be one of {', '.join(OOD_SPLITS)}, got {ood_split!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"--k must be a positive int, got {k!r}")
    path = Path(checkpoint)
    _check_checkpoint(path)
    model = load_trained(path)
    names, notes = _classifier_names(model, list(scores) if scores is not None else None)
    trained_on = checkpoint_config({"config": model.config}).dataset
    in_dataset = in_dataset or trained_on
    if in_dataset != trained_on:
        notes.append(f"in-distribution dataset {in_dataset!r} is not the one the checkpoint was trained on "
                     f"({trained_on!r})")

    def embed(dataset: str, split: str, part: str) -> Any:
        hook = (lambda _split, done, total: on_chunk(part, done, total)) if on_chunk is not None else None
        return embed_dataset(path, dataset, split, device=device, batch_size=batch_size,
                             skip_bad_images=skip_bad_images, on_chunk=hook)

    train = embed(in_dataset, "train", "in-train")
    if k > len(train):
        raise ConfigError(f"--k {k} exceeds the {len(train)} images of the in-distribution train split")
    bank = fit_bank(train.features, train.labels)
    del train
    test = embed(in_dataset, "test", "in-test")
    ood = embed(ood_dataset, ood_split, "ood")
    in_logits = _logits(model, test.features, batch_size) if model.classifier is not None else None
    ood_logits = _logits(model, ood.features, batch_size) if model.classifier is not None else None
    in_scores = {n: s.numpy() for n, s in ood_scores(bank, test.features, in_logits, scores=names, k=k).items()}
    out_scores = {n: s.numpy() for n, s in ood_scores(bank, ood.features, ood_logits, scores=names, k=k).items()}
    metrics = {n: {**ood_metrics(in_scores[n], out_scores[n]), "in_mean": float(in_scores[n].mean()),
                   "ood_mean": float(out_scores[n].mean())} for n in names}
    summary: dict[str, Any] = {
        "checkpoint": str(path), "kind": model.kind, "method": model.method, "label": model_label(model),
        "in_dataset": in_dataset, "in_bank_split": "train", "in_split": "test", "in_train_count": int(bank.features.shape[0]),
        "in_count": len(test), "ood_dataset": ood_dataset, "ood_split": ood_split, "ood_count": len(ood),
        "image_size": model.image_size, "channels": model.channels,
        "adaptation": (f"every image's shorter side resized to {model.image_size} and centre-cropped, converted to "
                       f"{model.channels} channel(s) (gray <-> RGB), the encoder's training normalisation"),
        "k": k, "scores": names,
        "positive": "in-distribution", "metrics": metrics, "notes": notes,
        "in_test_accuracy": accuracy(in_logits.argmax(1), test.labels) if in_logits is not None else None,
    }
    logger.info("ood: %s vs %s, %s", in_dataset, ood_dataset,
                ", ".join(f"{n} AUROC {m['auroc']:.4f}" for n, m in metrics.items()))
    return OODResult(summary, in_scores, out_scores)


def model_label(model: TrainedModel) -> str:
    """``"supcon (linear probe)"``, ``"simclr (encoder)"``, ``"ce (CE)"``...: a checkpoint's name in tables."""
    kind = "fine-tune" if model.is_finetune else _KIND_NAMES.get(model.kind, model.kind)
    return model.method if model.kind == "ce" else f"{model.method} ({kind})"


def write_ood(result: OODResult, out: str | Path) -> Path:
    """Writes :data:`OOD_JSON`, :data:`OOD_CSV` (one row per score) and :data:`OOD_SCORES_NPZ`
    (``in_<score>`` / ``ood_<score>`` arrays) into the folder ``out``, atomically; returns ``out``.

    Raises:
        ConfigError: ``out`` is an existing file.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; pass a folder")
    out.mkdir(parents=True, exist_ok=True)
    summary = result.summary
    write_json_atomic(out / OOD_JSON, summary, sort_keys=False)
    rows = [{"score": n, **{m: f"{v:.6f}" for m, v in summary["metrics"][n].items()},
             "in_dataset": summary["in_dataset"], "ood_dataset": summary["ood_dataset"],
             "checkpoint": summary["checkpoint"]} for n in summary["scores"]]
    write_csv_atomic(out / OOD_CSV, rows)
    arrays = {f"{side}_{n}": scores[n] for side, scores in (("in", result.in_scores), ("ood", result.ood_scores))
              for n in summary["scores"]}
    write_atomic(out / OOD_SCORES_NPZ, lambda handle: np.savez(handle, **arrays))
    return out


def read_ood(folder: str | Path) -> dict[str, Any]:
    """The :data:`OOD_JSON` summary a ``supcon ood`` run wrote into ``folder``.

    Raises:
        ConfigError: no readable ``ood.json`` there.
    """
    path = Path(folder) / OOD_JSON
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{folder} holds no readable {OOD_JSON} ({exc.__class__.__name__}: {exc})") from None


def ood_rows(summaries: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of an OOD table, metrics in percent: one row per score.

    One summary gives ``score | AUROC | AUPR-In | AUPR-Out | FPR@95``; several (e.g. SupCon, SimCLR and
    CE on two pairs) add ``in -> OOD`` and ``model`` columns in front.
    """
    many = not isinstance(summaries, Mapping)
    items = list(summaries) if many else [summaries]  # type: ignore[list-item]
    header = [*(["in -> OOD", "model"] if many else []), "score", "AUROC (%)", "AUPR-In (%)", "AUPR-Out (%)",
              "FPR@95%TPR (%)"]
    rows: list[list[Any]] = []
    for summary in items:
        pair = f"{summary['in_dataset']} -> {summary['ood_dataset']}"
        for name in summary["scores"]:
            values = [round(100 * summary["metrics"][name][m], 2) for m in OOD_METRICS]
            rows.append([*([pair, summary.get("label", summary.get("method"))] if many else []), name, *values])
    return header, rows
