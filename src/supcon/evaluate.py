"""Evaluation beyond the linear probe: corruption robustness, hyper-parameter sweeps, gradients.

Three analyses of the SupCon paper (Khosla et al., NeurIPS 2020, arXiv 2004.11362), each a library
function and a ``supcon`` subcommand:

* **Robustness** (the paper's section 4, ImageNet-C): accuracy of a classifier checkpoint on
  corrupted copies of its test split (:mod:`supcon.corruptions`, or CIFAR-10-C arrays), the
  corruption error ``CE_c``, ``mCE`` and relative ``mCE`` of Hendrycks & Dietterich (ICLR 2019)
  against a baseline checkpoint. The arithmetic is pure functions on tables
  (``{corruption: [error rate per severity]}``): :func:`corruption_errors`, :func:`mce`,
  :func:`relative_corruption_errors`, :func:`relative_mce`.
* **Sweeps** (the paper's Fig. 4, stability to hyper-parameters): :func:`run_sweep` trains a grid
  of configs for each method (SupCon/SimCLR: pretrain + linear probe; CE: end to end) and tabulates
  the accuracy spread.
* **Gradients** (the paper's section 3.2 and supplementary section 7): :func:`gradient_coefficients`
  decomposes the gradient of ``L_out`` and ``L_in`` w.r.t. the anchor's normalised embedding into
  one term per positive and per negative; :func:`run_gradients` measures their magnitude against
  the similarity on a trained encoder (hard positives and hard negatives should dominate).

Classifier checkpoints are read by :func:`load_classifier`, which rebuilds ``images -> logits`` from
a ``linear`` checkpoint (its encoder comes from the pretrain checkpoint it names) or a ``ce`` one.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from supcon.config import Config, ConfigError, coerce, config_from_dict, known_config_values
from supcon.train.checkpoint import write_csv_atomic, write_text_atomic

__all__ = [
    "ImageClassifier", "load_classifier", "load_supcon_model", "checkpoint_config",
    "parse_corruptions", "parse_severities", "error_table", "corruption_errors", "mce",
    "relative_corruption_errors", "relative_mce", "classifier_accuracy", "evaluate_robustness",
    "run_robustness", "robustness_rows", "robustness_table", "markdown_table",
    "parse_grid", "SweepRun", "plan_sweep", "run_sweep", "CE_IRRELEVANT_KEYS",
    "gradient_coefficients", "anchor_gradients", "loss_gradients", "gradient_pairs",
    "analyze_gradients", "run_gradients", "gradients_rows", "gradients_table", "sweep_spread",
]

log = logging.getLogger(__name__)

#: A table of one model's results: corruption name -> one value per severity.
Table = Mapping[str, Sequence[float]]


# ---------------------------------------------------------------------------------------------
# Checkpoints -> models
# ---------------------------------------------------------------------------------------------


class ImageClassifier(nn.Module):
    """``images -> logits`` with the training split's normalisation built in.

    Args:
        encoder: ``(B, C, H, W)`` normalised float images -> ``(B, D)`` representations.
        classifier: ``(B, D) -> (B, num_classes)``.
        mean, std: per-channel normalisation of the training split.
        info: what the checkpoint says about itself (kind, method, classes, config, paths).

    Shapes:
        ``forward``: ``(B, C, H, W)`` uint8 in 0..255 or float in [0, 1] -> ``(B, num_classes)``.
    """

    def __init__(self, encoder: nn.Module, classifier: nn.Module, mean: Sequence[float],
                 std: Sequence[float], info: dict[str, Any] | None = None) -> None:
        super().__init__()
        from supcon.augment import Normalize

        self.normalize = Normalize(mean, std)
        self.encoder = encoder
        self.classifier = classifier
        self.info: dict[str, Any] = dict(info or {})

    @property
    def classes(self) -> list[str]:
        return list(self.info.get("classes", []))

    def forward(self, images: Tensor) -> Tensor:
        from supcon.augment import to_float_images

        x = to_float_images(images).to(self.normalize.mean.dtype)
        return self.classifier(self.encoder(self.normalize(x)))


def checkpoint_config(state: Mapping[str, Any]) -> Config:
    """The :class:`Config` stored in a checkpoint (keys this version does not know are dropped)."""
    return config_from_dict(known_config_values(dict(state.get("config", {}))))


def _source_checkpoint(path: Path, state: Mapping[str, Any]) -> Path:
    """The pretrain checkpoint a linear checkpoint names, also found when the run was moved."""
    from supcon.train.checkpoint import CheckpointError

    given = state.get("source_checkpoint")
    if not given:
        raise CheckpointError(f"{path} is a linear checkpoint without a 'source_checkpoint' entry")
    src = Path(given)
    candidates = [src, path.parent / src, path.parent.parent / src.name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise CheckpointError(
        f"{path} names its encoder checkpoint {given}, which does not exist (also looked for "
        f"{candidates[1]} and {candidates[2]})")


def load_classifier(path: str | Path, map_location: str | torch.device = "cpu") -> ImageClassifier:
    """Rebuilds the classifier (``images -> logits``) stored in a checkpoint.

    A ``linear`` checkpoint holds the linear classifier; its frozen encoder comes from the pretrain
    checkpoint named by ``source_checkpoint`` (looked up as written, relative to the linear
    checkpoint, and as ``../checkpoint.pt`` beside the linear run, the ``supcon run`` layout).
    A fine-tuned ``linear`` checkpoint holds its own encoder. A ``ce`` checkpoint holds the whole
    :class:`supcon.models.CEModel`.

    Args:
        path: a ``linear`` or ``ce`` checkpoint.
        map_location: where to load the weights.

    Returns:
        An :class:`ImageClassifier` in eval mode, with ``info`` holding ``kind``, ``method``,
        ``classes``, ``num_classes``, ``channels``, ``image_size``, ``config`` and ``path``.

    Raises:
        CheckpointError: a missing or foreign file, a pretrain checkpoint (no classifier), or
            weights that do not fit the architecture they name.
    """
    from supcon.models import CEModel, LinearClassifier
    from supcon.train.checkpoint import CheckpointError, load_checkpoint
    from supcon.train.engine import encoder_from_checkpoint, encoder_from_signature, load_weights

    path = Path(path)
    state = load_checkpoint(path, map_location=map_location)
    kind = state.get("kind")
    if kind == "pretrain":
        raise CheckpointError(
            f"{path} is a pretrain checkpoint (encoder and projection head, no classifier): train a "
            f"linear probe with `supcon linear --checkpoint {path}` and pass its checkpoint")
    if kind not in ("linear", "ce"):
        raise CheckpointError(f"{path} is a {kind!r} checkpoint, expected a 'linear' or 'ce' checkpoint")
    weights = state["model"]
    if kind == "ce":
        sig = state.get("signature", {})
        encoder = encoder_from_signature(sig, path)
        model = CEModel(encoder, int(sig.get("num_classes", state.get("num_classes", 0))))
        load_weights(model, weights["model"], path, "CE model")
        encoder, classifier = model.encoder, model.classifier
        method, source = "ce", None
    else:
        sig = state.get("signature", {})
        if "encoder" in weights:  # fine-tuned: the encoder travels with the classifier
            encoder = encoder_from_signature(sig, path)
            load_weights(encoder, weights["encoder"], path, "encoder")
            source = None
        else:
            source = _source_checkpoint(path, state)
            encoder, src_state = encoder_from_checkpoint(source, channels=sig.get("in_channels"))
            src_sig = src_state.get("signature", {})
            for key in ("arch", "in_channels", "width", "out_dim"):
                if key in sig and key in src_sig and sig[key] != src_sig[key]:
                    raise CheckpointError(
                        f"{source} holds a {key}={src_sig[key]!r} encoder, but {path} was trained on "
                        f"a {key}={sig[key]!r} one: the pretrain checkpoint was replaced")
        w = weights["classifier"]["weight"]
        classifier = LinearClassifier(int(w.shape[1]), int(w.shape[0]))
        load_weights(classifier, weights["classifier"], path, "linear classifier")
        method = state.get("method", "?")
    norm = state.get("normalization")
    if not norm:
        raise CheckpointError(f"{path} has no 'normalization' entry (mean, std of the training split)")
    info = {
        "kind": kind, "method": method, "path": str(path),
        "source_checkpoint": str(source) if source is not None else None,
        "classes": list(state.get("classes", [])), "num_classes": state.get("num_classes"),
        "channels": state.get("channels"), "image_size": state.get("image_size"),
        "config": dict(state.get("config", {})),
    }
    net = ImageClassifier(encoder, classifier, norm["mean"], norm["std"], info)
    return net.eval()


def load_supcon_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The encoder + projection head of a pretrain checkpoint (a linear one leads to its source).

    Returns:
        ``(model, state)``: a :class:`supcon.models.SupConModel` in eval mode and the pretrain
        checkpoint's dict.

    Raises:
        CheckpointError: not a pretrain (or linear) checkpoint, or weights that do not fit.
    """
    from supcon.models import SupConModel
    from supcon.train.checkpoint import CheckpointError, load_checkpoint
    from supcon.train.engine import encoder_from_signature, load_weights

    path = Path(path)
    state = load_checkpoint(path, map_location=map_location, kind=("pretrain", "linear", "ce"))
    if state["kind"] == "ce":
        raise CheckpointError(f"{path} is a cross-entropy checkpoint: it has no projection head to "
                              "analyse; pass a pretrain checkpoint")
    if state["kind"] == "linear":
        if "encoder" in state["model"]:
            raise CheckpointError(f"{path} is a fine-tuned checkpoint (no projection head); "
                                  "pass its pretrain checkpoint")
        path = _source_checkpoint(path, state)
        state = load_checkpoint(path, map_location=map_location, kind="pretrain")
    sig = state.get("signature", {})
    encoder = encoder_from_signature(sig, path)
    model = SupConModel(encoder, head=sig.get("head", "mlp"), feat_dim=int(sig.get("feat_dim", 128)))
    load_weights(model, state["model"]["model"], path, "SupCon model")
    state["path"] = str(path)
    return model.eval(), state


def _test_split(cfg: Config):
    from supcon.data import load_dataset

    return load_dataset(cfg.dataset, "test", image_size=cfg.image_size, download=False,
                        seed=cfg.seed, test_fraction=cfg.test_fraction)


def _resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device} asked for, but CUDA is not available")
    return device


# ---------------------------------------------------------------------------------------------
# Robustness: corruption errors, mCE, relative mCE (pure functions on tables)
# ---------------------------------------------------------------------------------------------


def parse_corruptions(spec: str | Sequence[str]) -> list[str]:
    """Corruption names from ``"all"``, group names (noise, blur, weather, digital, extra) and names.

    ``"all"`` is the 15 benchmark corruptions; ``"all+extra"`` adds the 4 held-out ones.

    Raises:
        ConfigError: an unknown name, naming it and the valid choices.
    """
    from supcon.corruptions import CORRUPTION_GROUPS, CORRUPTIONS, EXTRA_CORRUPTIONS

    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    items = [s for s in items if s]
    if not items:
        raise ConfigError("--corruptions is empty: give 'all', a group or comma-separated names")
    names: list[str] = []
    for item in items:
        if item == "all":
            chosen: Sequence[str] = CORRUPTIONS
        elif item == "all+extra":
            chosen = CORRUPTIONS + EXTRA_CORRUPTIONS
        elif item in CORRUPTION_GROUPS:
            chosen = CORRUPTION_GROUPS[item]
        elif item in CORRUPTIONS or item in EXTRA_CORRUPTIONS:
            chosen = (item,)
        else:
            raise ConfigError(
                f"--corruptions: unknown corruption {item!r}; use all, all+extra, a group "
                f"({', '.join(CORRUPTION_GROUPS)}) or names from: "
                f"{', '.join(CORRUPTIONS + EXTRA_CORRUPTIONS)}")
        names.extend(c for c in chosen if c not in names)
    return names


def parse_severities(spec: str | Sequence[int]) -> list[int]:
    """Severities from ``"1,2,3,4,5"`` (or a sequence), each an int from 1 to 5, sorted, unique.

    Raises:
        ConfigError: a value that is not an int from 1 to 5 (severity 0 is the clean image: it is
            always evaluated and must not be listed).
    """
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    items = [s for s in items if s != ""]
    if not items:
        raise ConfigError("--severities is empty: give comma-separated integers from 1 to 5")
    out: set[int] = set()
    for item in items:
        try:
            value = int(item)
            if isinstance(item, float) or (isinstance(item, str) and str(value) != item.lstrip("+")):
                raise ValueError
        except (TypeError, ValueError):
            raise ConfigError(f"--severities: {item!r} is not an integer from 1 to 5") from None
        if not 1 <= value <= 5:
            hint = " (severity 0, the clean test set, is always evaluated)" if value == 0 else ""
            raise ConfigError(f"--severities: severity must be an integer from 1 to 5, got {value}{hint}")
        out.add(value)
    return sorted(out)


def error_table(accuracy: Table) -> dict[str, list[float]]:
    """Accuracies in percent -> error rates in [0, 1]: ``E = 1 - acc / 100``."""
    table = {}
    for name, values in accuracy.items():
        for v in values:
            if not (isinstance(v, (int, float)) and math.isfinite(v) and 0 <= v <= 100):
                raise ValueError(f"accuracy of {name!r} must be percentages in [0, 100], got {list(values)}")
        table[name] = [1.0 - float(v) / 100.0 for v in values]
    return table


def _check_rate(value: Any, what: str) -> float:
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and 0 <= value <= 1):
        raise ValueError(f"{what} must be an error rate in [0, 1], got {value!r}")
    return float(value)


def _check_tables(errors: Table, baseline: Table | None, names: Sequence[str] | None) -> list[str]:
    """Validates the tables and returns the corruptions to use (``names`` or all of ``errors``)."""
    if not errors:
        raise ValueError("errors is empty: expected {corruption: [error rate per severity]}")
    chosen = list(errors) if names is None else list(names)
    if not chosen:
        raise ValueError("names is empty: no corruption to average over")
    for name in chosen:
        if name not in errors:
            raise ValueError(f"corruption {name!r} is not in errors (has {sorted(errors)})")
        row = list(errors[name])
        if not row:
            raise ValueError(f"errors[{name!r}] is empty: expected one error rate per severity")
        for v in row:
            _check_rate(v, f"errors[{name!r}]")
        if baseline is not None:
            if name not in baseline:
                raise ValueError(f"corruption {name!r} is in errors but not in baseline_errors")
            base_row = list(baseline[name])
            if len(base_row) != len(row):
                raise ValueError(f"errors[{name!r}] has {len(row)} severities, baseline_errors[{name!r}] "
                                 f"has {len(base_row)}")
            for v in base_row:
                _check_rate(v, f"baseline_errors[{name!r}]")
    return chosen


def corruption_errors(errors: Table, baseline_errors: Table | None = None, *,
                      names: Sequence[str] | None = None) -> dict[str, float]:
    """Corruption error per corruption (Hendrycks & Dietterich 2019).

    Without a baseline, the unnormalised ``CE_c = sum_s E_{s,c}`` (a sum of error rates). With one,
    ``CE_c^f = 100 * sum_s E^f_{s,c} / sum_s E^base_{s,c}`` in percent (the baseline scores 100).

    Args:
        errors: ``{corruption: [error rate in [0, 1] per severity]}`` of the model.
        baseline_errors: the same table for the baseline, same severities.
        names: corruptions to report (default: all of ``errors``).

    Raises:
        ValueError: malformed tables, or a baseline with zero error summed over severities.
    """
    chosen = _check_tables(errors, baseline_errors, names)
    out = {}
    for name in chosen:
        total = float(sum(errors[name]))
        if baseline_errors is None:
            out[name] = total
            continue
        base = float(sum(baseline_errors[name]))
        if base <= 0:
            raise ValueError(f"baseline error summed over severities is 0 for {name!r}: CE is undefined")
        out[name] = 100.0 * total / base
    return out


def mce(errors: Table, baseline_errors: Table, *, names: Sequence[str] | None = None) -> float:
    """Mean corruption error (percent): the mean over corruptions of :func:`corruption_errors`.

    Hendrycks & Dietterich average over the 15 benchmark corruptions; pass ``names`` to choose
    (default: every corruption of ``errors``).
    """
    ce = corruption_errors(errors, baseline_errors, names=names)
    return sum(ce.values()) / len(ce)


def relative_corruption_errors(errors: Table, clean_error: float, baseline_errors: Table,
                               baseline_clean_error: float, *,
                               names: Sequence[str] | None = None) -> dict[str, float]:
    """Relative corruption error per corruption (percent): degradation w.r.t. the clean error.

    ``100 * sum_s (E^f_{s,c} - E^f_clean) / sum_s (E^base_{s,c} - E^base_clean)``.

    Raises:
        ValueError: malformed tables, or a baseline whose summed degradation is 0 for a corruption
            (relative CE undefined).
    """
    chosen = _check_tables(errors, baseline_errors, names)
    clean = _check_rate(clean_error, "clean_error")
    base_clean = _check_rate(baseline_clean_error, "baseline_clean_error")
    out = {}
    for name in chosen:
        num = sum(float(e) - clean for e in errors[name])
        den = sum(float(e) - base_clean for e in baseline_errors[name])
        if den == 0:
            raise ValueError(f"the baseline's error on {name!r} does not change from its clean error: "
                             "relative CE is undefined")
        out[name] = 100.0 * num / den
    return out


def relative_mce(errors: Table, clean_error: float, baseline_errors: Table, baseline_clean_error: float,
                 *, names: Sequence[str] | None = None) -> float:
    """Relative mCE (percent): the mean over corruptions of :func:`relative_corruption_errors`."""
    rel = relative_corruption_errors(errors, clean_error, baseline_errors, baseline_clean_error, names=names)
    return sum(rel.values()) / len(rel)


@torch.no_grad()
def classifier_accuracy(classifier: nn.Module, images: Tensor, labels: Tensor, *,
                        batch_size: int = 512, device: str | torch.device = "cpu") -> float:
    """Top-1 accuracy (%) of ``classifier`` on ``images (N, C, H, W)`` uint8 / float in [0, 1]."""
    device = torch.device(device)
    classifier.eval()
    correct = 0
    for start in range(0, images.shape[0], batch_size):
        logits = classifier(images[start:start + batch_size].to(device))
        correct += int((logits.argmax(1).cpu() == labels[start:start + batch_size].cpu()).sum())
    return 100.0 * correct / max(1, images.shape[0])


def evaluate_robustness(classifiers: Mapping[str, nn.Module], images: Tensor, labels: Tensor,
                        corruptions: Sequence[str], severities: Sequence[int], *, seed: int = 0,
                        cifar_c: str | Path | None = None, batch_size: int = 512,
                        device: str | torch.device = "cpu",
                        on_result: Callable[[str, int], None] | None = None) -> dict[str, dict[str, Any]]:
    """Clean and corrupted accuracy of several classifiers on the same corrupted images.

    Each (corruption, severity) copy of the test set is made once (deterministically, by
    :func:`supcon.corruptions.corrupt_dataset` with ``seed``) or read from ``cifar_c``, and every
    classifier is scored on it.

    Args:
        classifiers: name -> ``images -> logits`` module (already on ``device``).
        images, labels: the clean test split, ``(N, C, H, W)`` uint8 and ``(N,)``.
        corruptions, severities: what to evaluate.
        seed: seed of the synthetic corruptions.
        cifar_c: a CIFAR-10-C directory to read instead of corrupting ``images``.
        on_result: called with (corruption, severity) after each combination.

    Returns:
        ``{name: {"clean_accuracy": float, "accuracy": {corruption: [acc % per severity]}}}``.
    """
    from supcon.corruptions import corrupt_dataset, load_corrupted_arrays
    from supcon.data import DatasetError

    device = torch.device(device)
    results: dict[str, dict[str, Any]] = {
        name: {"clean_accuracy": classifier_accuracy(net, images, labels, batch_size=batch_size, device=device),
               "accuracy": {}}
        for name, net in classifiers.items()}
    for corruption in corruptions:
        for name in classifiers:
            results[name]["accuracy"][corruption] = []
        for severity in severities:
            if cifar_c is not None:
                try:
                    x, y = load_corrupted_arrays(cifar_c, corruption, severity)
                except ValueError as exc:
                    raise DatasetError(f"--cifar-c: {exc}") from None
                if tuple(x.shape[1:]) != tuple(images.shape[1:]):
                    raise DatasetError(
                        f"--cifar-c arrays hold {tuple(x.shape[1:])} images, the model's test split "
                        f"{tuple(images.shape[1:])}: use a -C set of the dataset the model was trained on")
            else:
                x, y = corrupt_dataset(images, corruption, severity, seed=seed, batch_size=256,
                                       device=device), labels
            for name, net in classifiers.items():
                acc = classifier_accuracy(net, x, y, batch_size=batch_size, device=device)
                results[name]["accuracy"][corruption].append(acc)
            if on_result is not None:
                on_result(corruption, severity)
    return results


def _model_summary(result: Mapping[str, Any]) -> dict[str, Any]:
    acc = result["accuracy"]
    errors = error_table(acc)
    values = [v for row in acc.values() for v in row]
    return {
        "clean_accuracy": result["clean_accuracy"],
        "clean_error": 1.0 - result["clean_accuracy"] / 100.0,
        "mean_corrupted_accuracy": sum(values) / len(values) if values else None,
        "accuracy": {k: list(v) for k, v in acc.items()},
        "error": errors,
        "unnormalized_ce": corruption_errors(errors) if errors else {},
    }


def _same_split(a: Config, b: Config) -> bool:
    return (a.dataset, a.image_size, a.test_fraction, a.seed) == (b.dataset, b.image_size, b.test_fraction, b.seed)


def run_robustness(checkpoint: str | Path, out: str | Path, *, baseline: str | Path | None = None,
                   corruptions: str | Sequence[str] = "all", severities: str | Sequence[int] = (1, 2, 3, 4, 5),
                   cifar_c: str | Path | None = None, seed: int = 0, device: str = "auto",
                   batch_size: int = 512, plots: bool = True,
                   on_result: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    """Robustness of a classifier checkpoint (and a baseline) to corruptions; writes ``out/``.

    Files: ``robustness.json`` (everything below), ``robustness.csv`` (one row per model,
    corruption and severity; severity 0 is the clean test set), ``robustness_heatmap.png``
    (corruption x severity accuracy per model) and ``robustness_severity.png`` (accuracy against
    severity, one line per model).

    mCE and relative mCE average over the evaluated corruptions that belong to the 15-corruption
    benchmark (the extra 4 are reported per corruption only); ``mce_complete`` says whether all 15
    at all 5 severities were evaluated, i.e. whether the numbers are the standard ones.

    Raises:
        ConfigError: bad corruption names or severities, or a baseline with another test split.
        CheckpointError, DatasetError: unreadable checkpoints, data or -C arrays.
    """
    from supcon.corruptions import CORRUPTIONS

    names = parse_corruptions(corruptions)
    sevs = parse_severities(severities)
    dev = _resolve_device(device)
    out = Path(out)
    model = load_classifier(checkpoint).to(dev)
    cfg = checkpoint_config({"config": model.info["config"]})
    classifiers: dict[str, nn.Module] = {"model": model}
    if baseline is not None:
        base_model = load_classifier(baseline).to(dev)
        base_cfg = checkpoint_config({"config": base_model.info["config"]})
        if not _same_split(cfg, base_cfg):
            # Same test images or nothing: compare the splits themselves before refusing.
            a, b = _test_split(cfg), _test_split(base_cfg)
            if a.images.shape != b.images.shape or not torch.equal(a.images, b.images):
                raise ConfigError(
                    f"--baseline {baseline} was trained on dataset {base_cfg.dataset!r} (seed {base_cfg.seed}, "
                    f"test_fraction {base_cfg.test_fraction}), the model on {cfg.dataset!r} (seed {cfg.seed}, "
                    f"test_fraction {cfg.test_fraction}): their test splits differ")
        classifiers["baseline"] = base_model
    test = _test_split(cfg)
    results = evaluate_robustness(classifiers, test.images, test.labels, names, sevs, seed=seed,
                                  cifar_c=cifar_c, batch_size=batch_size, device=dev, on_result=on_result)
    summary: dict[str, Any] = {
        "checkpoint": str(checkpoint), "baseline": str(baseline) if baseline is not None else None,
        "dataset": cfg.dataset, "source": f"cifar-c:{cifar_c}" if cifar_c is not None else "synthetic",
        "corruption_seed": seed, "test_images": int(test.images.shape[0]),
        "corruptions": names, "severities": sevs,
        "models": {k: {"checkpoint": str(checkpoint if k == "model" else baseline),
                       "method": classifiers[k].info.get("method"), **_model_summary(v)}
                   for k, v in results.items()},
    }
    bench = [c for c in names if c in CORRUPTIONS]
    summary["mce_corruptions"] = bench
    summary["mce_complete"] = len(bench) == len(CORRUPTIONS) and sevs == [1, 2, 3, 4, 5]
    summary.update({"ce": None, "mce": None, "relative_ce": None, "relative_mce": None, "notes": []})
    if baseline is not None and bench:
        m, b = summary["models"]["model"], summary["models"]["baseline"]
        try:
            summary["ce"] = corruption_errors(m["error"], b["error"], names=bench)
            summary["mce"] = mce(m["error"], b["error"], names=bench)
        except ValueError as exc:
            summary["notes"].append(f"mCE undefined: {exc}")
        try:
            summary["relative_ce"] = relative_corruption_errors(m["error"], m["clean_error"], b["error"],
                                                                b["clean_error"], names=bench)
            summary["relative_mce"] = relative_mce(m["error"], m["clean_error"], b["error"],
                                                   b["clean_error"], names=bench)
        except ValueError as exc:
            summary["notes"].append(f"relative mCE undefined: {exc}")
        improving = [c for c in bench if sum(e - b["clean_error"] for e in b["error"][c]) < 0]
        if improving:
            summary["notes"].append(
                f"the baseline is more accurate on {', '.join(improving)} than on clean images: the relative CE "
                "of these corruptions divides by a negative degradation, so its sign is flipped")
        # Relative CE divides by the baseline's degradation: a handful of images makes it explode.
        n_test = int(test.images.shape[0])
        fragile = {c: abs(sum(e - b["clean_error"] for e in b["error"][c])) * n_test for c in bench}
        fragile = {c: v for c, v in fragile.items() if v < 5}
        if fragile:
            summary["notes"].append(
                "relative CE rests on a baseline degradation of fewer than 5 test images (summed over "
                "severities) for " + ", ".join(f"{c} ({v:.0f})" for c, v in fragile.items())
                + ": these ratios, and the relative mCE, are unreliable")
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "robustness.json", json.dumps(summary, indent=2))
    rows = []
    for model_name, r in summary["models"].items():
        rows.append({"model": model_name, "corruption": "clean", "severity": 0,
                     "accuracy": r["clean_accuracy"], "error": r["clean_error"]})
        for corruption in names:
            for sev, acc, err in zip(sevs, r["accuracy"][corruption], r["error"][corruption]):
                rows.append({"model": model_name, "corruption": corruption, "severity": sev,
                             "accuracy": acc, "error": err})
    write_csv_atomic(out / "robustness.csv", rows)
    if plots:
        from supcon import report

        accs = {_display_name(k, v): v["accuracy"] for k, v in summary["models"].items()}
        clean = {_display_name(k, v): v["clean_accuracy"] for k, v in summary["models"].items()}
        report.plot_robustness_heatmap(accs, sevs, out / "robustness_heatmap.png", clean=clean)
        report.plot_accuracy_vs_severity(accs, sevs, out / "robustness_severity.png", clean=clean)
    return summary


def _display_name(key: str, model: Mapping[str, Any]) -> str:
    method = model.get("method")
    return f"{key} ({method})" if method and method != "?" else key


# ---------------------------------------------------------------------------------------------
# Sweeps
# ---------------------------------------------------------------------------------------------

#: Config keys that do not change a cross-entropy run (it has no contrastive loss, head or probe).
CE_IRRELEVANT_KEYS: frozenset[str] = frozenset({
    "method", "temperature", "variant", "views", "head", "feat_dim", "online_probe", "queue_size",
    "key_momentum", "linear_epochs", "linear_lr", "linear_batch_size", "linear_augment", "finetune",
    "plots", "tsne_points", "progress", "log_every",
})
#: Config keys that do not change a contrastive run (pretrain + linear probe).
CONTRASTIVE_IRRELEVANT_KEYS: frozenset[str] = frozenset({"ce_lr", "ce_epochs", "plots", "tsne_points",
                                                         "progress", "log_every"})
SWEEP_METHODS = ("supcon", "simclr", "ce")


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["temperature=0.05,0.1", "batch_size=64,128"]`` -> ``{"temperature": [0.05, 0.1], ...}``.

    Keys are :class:`Config` fields (``-`` may stand for ``_``); values are converted to the
    field's type; repeated values are dropped.

    Raises:
        ConfigError: a malformed item, an unknown key, a bad value, a key given twice, or ``method``
            (choose methods with ``--methods``).
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"--grid entry {item!r} must look like key=value1,value2")
        if key == "method":
            raise ConfigError("--grid cannot vary 'method': list the methods with --methods")
        if key in grid:
            raise ConfigError(f"--grid names {key!r} twice")
        parsed: list[Any] = []
        for raw in values.split(","):
            raw = raw.strip()
            if not raw:
                raise ConfigError(f"--grid entry {item!r} has an empty value")
            value = coerce(key, raw)
            if value not in parsed:
                parsed.append(value)
        grid[key] = parsed
    return grid


@dataclass
class SweepRun:
    """One run of a sweep: its method, the grid values it uses, its config and its folder name."""

    method: str
    params: dict[str, Any]
    config: Config
    name: str


def _run_name(method: str, params: Mapping[str, Any]) -> str:
    if not params:
        return f"{method}/default"
    parts = []
    for key, value in params.items():
        text = str(value).replace(os.sep, "-").replace(" ", "")
        parts.append(f"{key}={text}")
    return f"{method}/" + "_".join(parts)


def plan_sweep(base: Config, grid: Mapping[str, Sequence[Any]], methods: Sequence[str]) -> list[SweepRun]:
    """Every (method, grid point) to train; axes that cannot change a method's result are skipped.

    Cross-entropy ignores the contrastive keys (``temperature``, ``views``, ``head``, the probe's
    ``linear_*``...; see :data:`CE_IRRELEVANT_KEYS`), ``lr`` when ``ce_lr`` is set and ``epochs``
    when ``ce_epochs`` is set; contrastive methods ignore ``ce_lr`` and ``ce_epochs``. Identical
    configs are run once.

    Raises:
        ConfigError: an unknown method or a grid point that is not a valid config.
    """
    unknown = [m for m in methods if m not in SWEEP_METHODS]
    if unknown or not methods:
        raise ConfigError(f"--methods must be a non-empty subset of {', '.join(SWEEP_METHODS)}, got {list(methods)}")
    runs: list[SweepRun] = []
    for method in dict.fromkeys(methods):
        if method == "ce":
            skip = set(CE_IRRELEVANT_KEYS)
            if base.ce_lr is not None:
                skip.add("lr")
            if base.ce_epochs is not None:
                skip.add("epochs")
        else:
            skip = set(CONTRASTIVE_IRRELEVANT_KEYS)
        axes = [k for k in grid if k not in skip]
        seen: set[tuple[Any, ...]] = set()
        for values in itertools.product(*(grid[k] for k in axes)):
            params = dict(zip(axes, values))
            key = tuple(values)
            if key in seen:
                continue
            seen.add(key)
            overrides = dict(params, plots=False)
            if method != "ce":
                overrides["method"] = method
            cfg = dataclasses.replace(base, **overrides)  # validated by Config.__post_init__
            runs.append(SweepRun(method, params, cfg, _run_name(method, params)))
    return runs


def _data_key(cfg: Config) -> tuple[Any, ...]:
    return (cfg.dataset, cfg.image_size, cfg.test_fraction, cfg.label_fraction, cfg.seed, cfg.download)


def _finished_metrics(run: SweepRun, run_dir: Path) -> dict[str, Any] | None:
    final = run_dir / ("metrics.json" if run.method == "ce" else "linear/metrics.json")
    pre = run_dir / "metrics.json"
    if not final.is_file() or not pre.is_file():
        return None
    metrics = json.loads(final.read_text())
    if run.method == "ce":
        return {"accuracy": metrics.get("test_acc"), "knn_acc": metrics.get("knn_acc")}
    return {"accuracy": metrics.get("test_acc"), "knn_acc": json.loads(pre.read_text()).get("knn_acc")}


def run_sweep(base: Config, grid: Mapping[str, Sequence[Any]], methods: Sequence[str], out: str | Path, *,
              resume: bool = False, overwrite: bool = False, plots: bool = True,
              on_result: Callable[[SweepRun, dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Trains every run of :func:`plan_sweep` in-process and tabulates the accuracies.

    SupCon / SimCLR runs pretrain and linear-probe (``out/<method>/<params>/`` and its ``linear/``);
    CE runs train end to end. Every run uses the same epochs (the base config's). Plots of single
    runs are off. Writes ``sweep.csv`` (one row per run: method, grid values, linear-probe or CE
    test accuracy, kNN accuracy, seconds, folder; rewritten after each run), ``sweep.json`` (rows
    and per-method spread) and ``sweep_box.png`` (accuracy spread per method).

    Args:
        resume: reuse runs of ``out`` that finished; train the others.
        overwrite: delete ``out`` first.

    Raises:
        RunDirError: ``out`` holds a sweep and neither ``resume`` nor ``overwrite`` is given.
    """
    from supcon.train.engine import RunDirError, load_data, pretrain, train_ce, train_linear

    out = Path(out)
    runs = plan_sweep(base, grid, methods)
    if resume and overwrite:
        raise RunDirError("resume and overwrite are mutually exclusive")
    if out.is_dir() and (out / "sweep.csv").exists() and not (resume or overwrite):
        raise RunDirError(f"{out} already holds a sweep: pass --resume to finish it or --overwrite to replace it")
    if overwrite and out.is_dir():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    keys = list(grid)
    fields = ["method", *keys, "accuracy", "knn_acc", "seconds", "run_dir"]
    data_cache: dict[tuple[Any, ...], Any] = {}
    rows: list[dict[str, Any]] = []
    for run in runs:
        run_dir = out / run.name
        t0 = time.perf_counter()
        result = _finished_metrics(run, run_dir) if resume else None
        if result is None:
            cfg = run.config
            key = _data_key(cfg)
            if key not in data_cache:
                data_cache[key] = load_data(cfg)
            data = data_cache[key]
            if run.method == "ce":
                m = train_ce(cfg, run_dir, overwrite=True, data=data)
                result = {"accuracy": m["test_acc"], "knn_acc": m.get("knn_acc")}
            else:
                m = pretrain(cfg, run_dir, overwrite=True, data=data)
                lin = train_linear(cfg, run_dir / "checkpoint.pt", run_dir / "linear", overwrite=True, data=data)
                result = {"accuracy": lin["test_acc"], "knn_acc": m.get("knn_acc")}
        row = {"method": run.method, **{k: run.params.get(k, "") for k in keys}, **result,
               "seconds": round(time.perf_counter() - t0, 3), "run_dir": run.name}
        rows.append(row)
        write_csv_atomic(out / "sweep.csv", rows, fields)
        if on_result is not None:
            on_result(run, row)
    summary = {"grid": {k: list(v) for k, v in grid.items()}, "methods": list(dict.fromkeys(methods)),
               "epochs": base.epochs, "rows": rows, "spread": sweep_spread(rows)}
    write_text_atomic(out / "sweep.json", json.dumps(summary, indent=2, default=str))
    if plots:
        from supcon import report

        report.plot_sweep_box(rows, out / "sweep_box.png")
    return rows


def sweep_spread(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per method: runs, mean, std (population), min, median, max of ``accuracy``."""
    out: dict[str, dict[str, float]] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        accs = sorted(float(r["accuracy"]) for r in rows if r["method"] == method)
        n = len(accs)
        mean = sum(accs) / n
        mid = accs[n // 2] if n % 2 else 0.5 * (accs[n // 2 - 1] + accs[n // 2])
        out[method] = {"runs": n, "mean": mean, "std": math.sqrt(sum((a - mean) ** 2 for a in accs) / n),
                       "min": accs[0], "median": mid, "max": accs[-1]}
    return out


# ---------------------------------------------------------------------------------------------
# Gradient analysis (the paper's section 3.2 and supplementary section 7)
# ---------------------------------------------------------------------------------------------


def gradient_coefficients(z: Tensor, labels: Tensor, temperature: float, variant: str = "out") -> Tensor:
    """Per-pair coefficients of the anchor gradient of L_out / L_in (paper eq. 2, 3; supp. sec. 7).

    For anchor ``i`` with positives ``P(i)`` (same label, ``j != i``) and negatives ``N(i)``,
    writing ``P_ij = exp(z_i.z_j/t) / sum_{a != i} exp(z_i.z_a/t)``::

        dL_i/dz_i = (1/t) [ sum_{p in P(i)} z_p (P_ip - X_ip) + sum_{n in N(i)} z_n P_in ]

    with ``X_ip = 1/|P(i)|`` for L_out and ``X_ip = exp(z_i.z_p/t) / sum_{p' in P(i)} exp(z_i.z_p'/t)``
    for L_in. This returns ``C[i, j] = P_ij - X_ij`` (``X`` is 0 on negatives), so that
    ``dL_i/dz_i = (1/t) C[i] @ z`` and, as ``z_j`` enters ``L_i`` only through ``z_i.z_j``,
    ``dL_i/dz_j = (1/t) C[i, j] z_i`` for ``j != i``. Rows of anchors without positives are 0 (the
    loss leaves them out).

    Args:
        z: ``(n, d)`` embeddings, already L2-normalised (the gradient is w.r.t. these).
        labels: ``(n,)`` integer class of each row.
        temperature: ``t > 0``.
        variant: ``"out"`` or ``"in"``.

    Returns:
        ``(n, n)`` coefficients, zero on the diagonal.
    """
    if z.ndim != 2:
        raise ValueError(f"z must be (n, d), got shape {tuple(z.shape)}")
    if labels.shape != (z.shape[0],):
        raise ValueError(f"labels has shape {tuple(labels.shape)}, expected ({z.shape[0]},) like z's rows")
    if variant not in ("out", "in"):
        raise ValueError(f"variant must be 'out' or 'in', got {variant!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n = z.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    sim = (z @ z.T) / temperature
    probs = torch.softmax(sim.masked_fill(eye, -math.inf), dim=1)
    positive = (labels[:, None] == labels[None, :]) & ~eye
    has_pos = positive.any(1, keepdim=True)
    if variant == "out":
        x = positive.to(z.dtype) / positive.sum(1, keepdim=True).clamp_min(1).to(z.dtype)
    else:
        x = torch.softmax(sim.masked_fill(~positive, -math.inf), dim=1)
        x = torch.where(positive, x, torch.zeros_like(x))  # rows without positives give NaN
    coef = probs - x
    return torch.where(has_pos & ~eye, coef, torch.zeros_like(coef))


def anchor_gradients(z: Tensor, labels: Tensor, temperature: float, variant: str = "out") -> Tensor:
    """``dL_i/dz_i`` for every anchor ``i`` (only its own loss term): ``(n, d)``."""
    return gradient_coefficients(z, labels, temperature, variant) @ z / temperature


def loss_gradients(z: Tensor, labels: Tensor, temperature: float, variant: str = "out",
                   reduction: str = "mean") -> Tensor:
    """Gradient of the whole loss w.r.t. every normalised embedding, from the decomposition.

    ``d(sum_i L_i)/dz_k = (1/t) [ sum_j C[k, j] z_j + sum_i C[i, k] z_i ]``: row ``k`` anchors its
    own term and appears as a positive or negative in the others'. ``reduction="mean"`` divides by
    the number of anchors with a positive, as :func:`supcon.losses.supcon_loss` does.
    """
    coef = gradient_coefficients(z, labels, temperature, variant)
    grad = (coef @ z + coef.T @ z) / temperature
    if reduction == "mean":
        same = labels[:, None] == labels[None, :]
        anchors_with_positive = (same.sum(1) > 1).sum().clamp_min(1)
        grad = grad / anchors_with_positive
    elif reduction != "sum":
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    return grad


def gradient_pairs(z: Tensor, labels: Tensor, temperature: float, variant: str = "out") -> dict[str, Tensor]:
    """Every (anchor, other) term of the anchor gradients, flattened.

    Returns:
        ``similarity`` (cosine ``z_i.z_j``), ``coefficient`` (``C[i, j]``), ``magnitude`` (the term's
        norm w.r.t. ``z_i``: ``|C[i, j]| / t``), ``projected`` (its norm after the normalisation
        Jacobian ``(I - z_i z_i^T)``, per unit ``||w_i||``: ``|C[i, j]| sqrt(1 - s^2) / t``, the
        quantity of the paper's supplementary eq. 16-21), ``positive`` (bool) and ``anchor`` (index),
        for all ``j != i`` of anchors that have a positive.
    """
    coef = gradient_coefficients(z, labels, temperature, variant)
    n = z.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    positive = (labels[:, None] == labels[None, :]) & ~eye
    keep = ~eye & positive.any(1, keepdim=True)
    sim = (z @ z.T).clamp(-1, 1)
    anchors = torch.arange(n, device=z.device)[:, None].expand(n, n)
    magnitude = coef.abs() / temperature
    return {
        "similarity": sim[keep], "coefficient": coef[keep], "magnitude": magnitude[keep],
        "projected": magnitude[keep] * torch.sqrt((1 - sim[keep] ** 2).clamp_min(0)),
        "positive": positive[keep], "anchor": anchors[keep],
    }


def _rank(x: Tensor) -> Tensor:
    order = torch.argsort(x)
    ranks = torch.empty_like(x)
    ranks[order] = torch.arange(len(x), dtype=x.dtype, device=x.device)
    return ranks


def _spearman(x: Tensor, y: Tensor) -> float | None:
    if len(x) < 3:
        return None
    rx, ry = _rank(x.double()), _rank(y.double())
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = float(rx.norm() * ry.norm())
    return float((rx * ry).sum()) / den if den > 0 else None


def analyze_gradients(z: Tensor, labels: Tensor, temperature: float, *, bins: int = 10) -> dict[str, Any]:
    """Magnitude of the per-positive and per-negative gradient terms against similarity.

    For L_out and L_in on the same embeddings: means over ``bins`` similarity bins of equal counts
    (per kind), and per kind the Spearman correlation of the (projected) magnitude with the
    similarity, the mean magnitude of the hard and the easy half (hard positives: below the median
    similarity; hard negatives: above it) and the hard half's share of the total magnitude.

    Returns:
        ``{"out": {...}, "in": {...}, "temperature", "anchors", "bins"}``, each variant holding
        ``"positives"`` and ``"negatives"`` summaries and ``"binned"`` rows.
    """
    z = z.double()
    result: dict[str, Any] = {"temperature": temperature, "anchors": int(z.shape[0]), "bins": bins}
    for variant in ("out", "in"):
        pairs = gradient_pairs(z, labels, temperature, variant)
        summary: dict[str, Any] = {}
        binned: list[dict[str, Any]] = []
        for kind, sel in (("positives", pairs["positive"]), ("negatives", ~pairs["positive"])):
            sim, proj, mag = pairs["similarity"][sel], pairs["projected"][sel], pairs["magnitude"][sel]
            if len(sim) == 0:
                summary[kind] = {"pairs": 0}
                continue
            median = sim.median()
            hard = sim < median if kind == "positives" else sim > median
            total = float(proj.sum())
            summary[kind] = {
                "pairs": int(len(sim)),
                "mean_similarity": float(sim.mean()),
                "mean_projected": float(proj.mean()),
                "mean_magnitude": float(mag.mean()),
                "spearman_similarity_vs_projected": _spearman(sim, proj),
                "spearman_similarity_vs_magnitude": _spearman(sim, mag),
                "hard_half_share_projected": float(proj[hard].sum()) / total if total > 0 else None,
                "hard_half_mean_projected": float(proj[hard].mean()) if hard.any() else None,
                "easy_half_mean_projected": float(proj[~hard].mean()) if (~hard).any() else None,
            }
            # equal-count bins: similarities of a trained encoder crowd into a narrow range
            edges = torch.quantile(sim, torch.linspace(0, 1, bins + 1, dtype=sim.dtype))
            index = torch.bucketize(sim, edges[1:-1], right=True).clamp_max(bins - 1)
            for b in range(bins):
                in_bin = index == b
                count = int(in_bin.sum())
                binned.append({
                    "variant": variant, "kind": kind, "bin_low": float(edges[b]), "bin_high": float(edges[b + 1]),
                    "pairs": count, "mean_similarity": float(sim[in_bin].mean()) if count else None,
                    "mean_magnitude": float(mag[in_bin].mean()) if count else None,
                    "mean_projected": float(proj[in_bin].mean()) if count else None,
                })
        result[variant] = {"summary": summary, "binned": binned}
    return result


def run_gradients(checkpoint: str | Path, out: str | Path, *, batch: int = 256, seed: int = 0,
                  device: str = "auto", bins: int = 10, max_points: int = 20000,
                  plots: bool = True) -> dict[str, Any]:
    """The gradient analysis on a trained encoder + head; writes ``out/``.

    Takes ``batch`` test images (a seeded random draw), makes two views with the checkpoint's
    augmentation config, embeds them with the encoder and projection head, and decomposes the
    gradients of L_out and L_in (at the checkpoint's temperature) into per-positive and
    per-negative terms (:func:`analyze_gradients`). Writes ``gradients.json`` (summaries and binned
    means), ``gradients.csv`` (the binned means) and ``gradients.png`` (magnitude against similarity,
    positives and negatives, L_out and L_in side by side; at most ``max_points`` points drawn).

    Raises:
        ConfigError: ``batch`` < 2 or ``bins`` < 1.
        CheckpointError: not a pretrain (or linear-on-pretrain) checkpoint.
    """
    from supcon.augment import Normalize, build_augmentation, make_views

    if batch < 2:
        raise ConfigError(f"--batch must be >= 2, got {batch}")
    if bins < 1:
        raise ConfigError(f"--bins must be >= 1, got {bins}")
    dev = _resolve_device(device)
    model, state = load_supcon_model(checkpoint)
    model = model.to(dev)
    cfg = checkpoint_config(state)
    test = _test_split(cfg)
    n = min(batch, test.images.shape[0])
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(test.images.shape[0], generator=gen)[:n]
    images, labels = test.images[idx], test.labels[idx]
    augment = build_augmentation(cfg.augment, test.image_size, test.channels, crop_scale=(cfg.crop_min, 1.0),
                                 blur=cfg.blur, flip=cfg.flip).to(dev)
    norm = state["normalization"]
    normalize = Normalize(norm["mean"], norm["std"]).to(dev)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), torch.no_grad():
        torch.manual_seed(seed)
        views = make_views(augment, images.to(dev), 2)  # (n, 2, C, S, S)
        # view-major rows, as supcon_loss flattens (batch, views, dim)
        flat = views.transpose(0, 1).flatten(0, 1)
        z = model(normalize(flat)).double().cpu()
    row_labels = labels.repeat(2)
    analysis = analyze_gradients(z, row_labels, cfg.temperature, bins=bins)
    analysis.update({"checkpoint": str(checkpoint), "pretrain_checkpoint": state["path"],
                     "method": state.get("method"), "dataset": cfg.dataset, "images": int(n), "views": 2,
                     "trained_variant": cfg.variant})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "gradients.json", json.dumps(analysis, indent=2))
    write_csv_atomic(out / "gradients.csv", analysis["out"]["binned"] + analysis["in"]["binned"])
    if plots:
        from supcon import report

        pairs = {v: {k: t.float() if t.is_floating_point() else t
                     for k, t in gradient_pairs(z, row_labels, cfg.temperature, v).items()}
                 for v in ("out", "in")}
        report.plot_gradient_analysis(pairs, analysis, out / "gradients.png", max_points=max_points, seed=seed)
    return analysis


# ---------------------------------------------------------------------------------------------
# CLI commands (registered into supcon.cli.COMMANDS on import)
# ---------------------------------------------------------------------------------------------


def _add_robustness_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, required=True, help="linear-probe or CE checkpoint.pt")
    p.add_argument("--baseline", type=Path, default=None,
                   help="baseline classifier checkpoint for CE / mCE / relative mCE (e.g. the CE run)")
    p.add_argument("--corruptions", default="all",
                   help="all (the 15 of CIFAR-10-C), all+extra, groups (noise, blur, weather, digital, "
                        "extra) or comma-separated names (default: all)")
    p.add_argument("--severities", default="1,2,3,4,5", help="comma-separated severities 1..5 (default: all)")
    p.add_argument("--cifar-c", type=Path, default=None,
                   help="read CIFAR-10-C arrays (<name>.npy, labels.npy) instead of corrupting the test split")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic corruptions (default: 0)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--batch-size", type=int, default=512, help="evaluation batch size (default: 512)")
    p.add_argument("--no-plots", dest="plots", action="store_false", help="skip the PNG plots")
    p.add_argument("--out", type=Path, default=Path("runs/robustness"), help="output folder")


def robustness_rows(summary: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of a robustness summary, one row per model (the baseline scores 100)."""
    header = ["model", "clean acc (%)", "mean corrupted acc (%)", "mCE (%)", "relative mCE (%)"]
    rows = []
    for key, m in summary["models"].items():
        is_model = key == "model"
        mce_v = summary.get("mce") if is_model else (100.0 if summary.get("mce") is not None else None)
        rel_v = summary.get("relative_mce") if is_model else (100.0 if summary.get("relative_mce") is not None else None)
        rows.append([_display_name(key, m), m["clean_accuracy"], m["mean_corrupted_accuracy"], mce_v, rel_v])
    return header, rows


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; floats with 4 significant digits, None as '-'."""
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def robustness_table(summary: Mapping[str, Any]) -> str:
    """Markdown table of a robustness summary: one row per model."""
    return markdown_table(*robustness_rows(summary))


def _cmd_robustness(args: argparse.Namespace) -> int:
    names = parse_corruptions(args.corruptions)  # fail fast, before loading anything
    sevs = parse_severities(args.severities)
    total = len(names) * len(sevs)
    done = [0]

    def progress(corruption: str, severity: int) -> None:
        done[0] += 1
        print(f"  [{done[0]}/{total}] {corruption} s{severity}", flush=True)

    summary = run_robustness(args.checkpoint, args.out, baseline=args.baseline, corruptions=names,
                             severities=sevs, cifar_c=args.cifar_c, seed=args.seed, device=args.device,
                             batch_size=args.batch_size, plots=args.plots, on_result=progress)
    print(f"\nRobustness on {summary['dataset']} ({summary['source']}, {len(names)} corruptions x "
          f"severities {','.join(map(str, sevs))}; mCE over {len(summary['mce_corruptions'])} benchmark corruptions"
          f"{'' if summary['mce_complete'] else ', not the full 15 x 5'}):")
    print(robustness_table(summary))
    for note in summary["notes"]:
        print(f"note: {note}")
    print(f"\nrobustness.json, robustness.csv and plots in {args.out}")
    return 0


def _add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    from supcon.cli import _add_config_flags

    p.add_argument("--grid", nargs="+", required=True, metavar="KEY=V1,V2",
                   help="config keys and their values, e.g. temperature=0.05,0.1 batch_size=64,128")
    p.add_argument("--methods", default="supcon,ce", help="comma-separated subset of supcon,simclr,ce")
    p.add_argument("--out", type=Path, default=Path("runs/sweep"), help="sweep folder (default: runs/sweep)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="reuse finished runs in --out, train the rest")
    mode.add_argument("--overwrite", action="store_true", help="replace a sweep already in --out")
    _add_config_flags(p)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from supcon.cli import config_from_args

    base = config_from_args(args)
    grid = parse_grid(args.grid)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    runs = plan_sweep(base, grid, methods)
    print(f"sweep: {len(runs)} runs ({', '.join(f'{m}: {sum(r.method == m for r in runs)}' for m in dict.fromkeys(methods))})")
    done = [0]

    def report_run(run: SweepRun, row: dict[str, Any]) -> None:
        done[0] += 1
        print(f"  [{done[0]}/{len(runs)}] {run.name}: accuracy {row['accuracy']:.2f}% ({row['seconds']:.1f}s)",
              flush=True)

    rows = run_sweep(base, grid, methods, args.out, resume=args.resume, overwrite=args.overwrite,
                     plots=base.plots, on_result=report_run)
    print("\n| method | runs | mean (%) | std | min | median | max |\n|---|---|---|---|---|---|---|")
    for method, s in sweep_spread(rows).items():
        print(f"| {method} | {s['runs']} | {s['mean']:.2f} | {s['std']:.2f} | {s['min']:.2f} | "
              f"{s['median']:.2f} | {s['max']:.2f} |")
    print(f"\nsweep.csv, sweep.json and sweep_box.png in {args.out}")
    return 0


def _add_gradients_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="pretrain checkpoint.pt (encoder + projection head), or a linear one on it")
    p.add_argument("--batch", type=int, default=256, help="test images in the batch (two views each)")
    p.add_argument("--bins", type=int, default=10, help="similarity bins for the binned means")
    p.add_argument("--seed", type=int, default=0, help="seed of the image draw and the augmentations")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--out", type=Path, default=Path("runs/gradients"), help="output folder")


def gradients_rows(analysis: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of :func:`analyze_gradients`' summaries: one row per loss and kind."""
    header = ["loss", "kind", "pairs", "mean similarity", "mean projected norm", "hard-half mean",
              "easy-half mean", "hard-half share", "Spearman(similarity, norm)"]
    rows = []
    for variant in ("out", "in"):
        for kind in ("positives", "negatives"):
            s = analysis[variant]["summary"].get(kind, {})
            if not s.get("pairs"):
                continue
            rows.append([f"L_{variant}", kind, s["pairs"], s["mean_similarity"], s["mean_projected"],
                         s["hard_half_mean_projected"], s["easy_half_mean_projected"],
                         s["hard_half_share_projected"], s["spearman_similarity_vs_projected"]])
    return header, rows


def gradients_table(analysis: Mapping[str, Any]) -> str:
    """Markdown table of :func:`analyze_gradients`' summaries."""
    return markdown_table(*gradients_rows(analysis))


def _cmd_gradients(args: argparse.Namespace) -> int:
    analysis = run_gradients(args.checkpoint, args.out, batch=args.batch, seed=args.seed, device=args.device,
                             bins=args.bins)
    print(f"Gradient terms on {analysis['images']} test images x 2 views of {analysis['dataset']} "
          f"(t = {analysis['temperature']}); hard positives = below-median similarity, "
          "hard negatives = above-median:")
    print(gradients_table(analysis))
    print(f"\ngradients.json, gradients.csv and gradients.png in {args.out}")
    return 0


def _register() -> None:
    from supcon import cli

    cli.COMMANDS["robustness"] = (_add_robustness_arguments, _cmd_robustness,
                                  "accuracy under corruptions, CE / mCE / relative mCE against a baseline")
    cli.COMMANDS["sweep"] = (_add_sweep_arguments, _cmd_sweep,
                             "train a hyper-parameter grid per method, tabulate the accuracy spread")
    cli.COMMANDS["gradients"] = (_add_gradients_arguments, _cmd_gradients,
                                 "per-positive / per-negative gradient magnitudes of L_out and L_in")


_register()
