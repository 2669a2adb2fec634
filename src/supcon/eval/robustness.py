"""Robustness of a classifier checkpoint to corruptions (the SupCon paper's section 4, ImageNet-C).

Accuracy of a classifier on corrupted copies of its test split (:mod:`supcon.corruptions`, or
CIFAR-10-C arrays), with the corruption error ``CE_c``, ``mCE`` and relative ``mCE`` of Hendrycks &
Dietterich (ICLR 2019) against a baseline checkpoint (:mod:`supcon.eval.robustness_metrics`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from supcon.checkpoint import checkpoint_config, load_classifier
from supcon.config import Config, ConfigError
from supcon.corruptions import (CORRUPTION_GROUPS, CORRUPTIONS, EXTRA_CORRUPTIONS, corrupt_dataset,
                                load_corrupted_arrays)
from supcon.data import DatasetError, load_test_split
from supcon.data.adapt import match_channels
from supcon.devices import resolve_device
from supcon.eval.robustness_metrics import (corruption_errors, error_table, mce, relative_corruption_errors,
                                            relative_mce)
from supcon.metrics import Inference, accuracy, predict
from supcon.runfiles import ROBUSTNESS_CSV, ROBUSTNESS_JSON, write_csv_atomic, write_text_atomic

__all__ = ["parse_corruptions", "parse_severities", "classifier_accuracy", "evaluate_robustness",
           "run_robustness", "robustness_rows", "display_name", "RobustnessFinish"]

#: Called by :func:`run_robustness` once its files are written: ``(summary, out folder)``.
RobustnessFinish = Callable[[Mapping[str, Any], Path], None]


def _split_spec(spec: str | Sequence[Any]) -> list[Any]:
    return [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)


def parse_corruptions(spec: str | Sequence[str]) -> list[str]:
    """Corruption names from ``"all"``, group names (noise, blur, weather, digital, extra) and names.

    ``"all"`` is the 15 benchmark corruptions; ``"all+extra"`` adds the 4 held-out ones.

    Raises:
        ConfigError: an unknown name, naming it and the valid choices.
    """
    items = [s for s in (str(s).strip() for s in _split_spec(spec)) if s]
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
    items = [s for s in _split_spec(spec) if s != ""]
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


def _check_batch_size(batch_size: object) -> None:
    """``batch_size`` must be a positive int (``--batch-size``)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"--batch-size (batch_size) must be a positive integer, got {batch_size!r}")


def classifier_accuracy(classifier: nn.Module, images: Tensor, labels: Tensor, *,
                        batch_size: int = 512, device: str | torch.device = "cpu") -> float:
    """Top-1 accuracy (%) of ``classifier`` on ``images (N, C, H, W)`` uint8 / float in [0, 1]."""
    how = Inference(device=torch.device(device), batch_size=batch_size)
    return accuracy(predict(classifier, images, how=how), labels)


def _corrupted_copy(images: Tensor, labels: Tensor, corruption: str, severity: int, *, seed: int,
                    cifar_c: str | Path | None, device: torch.device) -> tuple[Tensor, Tensor]:
    """The test split at ``(corruption, severity)``: corrupted here, or read from CIFAR-10-C arrays."""
    if cifar_c is None:
        return corrupt_dataset(images, corruption, severity, seed=seed, batch_size=256, device=device), labels
    try:
        x, y = load_corrupted_arrays(cifar_c, corruption, severity)
    except ValueError as exc:
        raise DatasetError(f"--cifar-c: {exc}") from None
    if tuple(x.shape[1:]) != tuple(images.shape[1:]):
        raise DatasetError(
            f"--cifar-c arrays hold {tuple(x.shape[1:])} images, the model's test split "
            f"{tuple(images.shape[1:])}: use a -C set of the dataset the model was trained on")
    return x, y


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

    Raises:
        ConfigError: ``batch_size`` is not a positive int.
    """
    _check_batch_size(batch_size)
    device = torch.device(device)

    def score(net: nn.Module, x: Tensor, y: Tensor) -> float:
        return classifier_accuracy(net, x, y, batch_size=batch_size, device=device)

    results: dict[str, dict[str, Any]] = {
        name: {"clean_accuracy": score(net, images, labels), "accuracy": {}} for name, net in classifiers.items()}
    for corruption in corruptions:
        for name in classifiers:
            results[name]["accuracy"][corruption] = []
        for severity in severities:
            x, y = _corrupted_copy(images, labels, corruption, severity, seed=seed, cifar_c=cifar_c, device=device)
            for name, net in classifiers.items():
                results[name]["accuracy"][corruption].append(score(net, x, y))
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


def _load_classifiers(checkpoint: str | Path, baseline: str | Path | None,
                      device: torch.device) -> tuple[Config, dict[str, nn.Module]]:
    """The model (and baseline) on ``device``, and the model's config.

    Raises:
        ConfigError: a baseline whose test split differs from the model's.
    """
    model = load_classifier(checkpoint).to(device)
    cfg = checkpoint_config({"config": model.info["config"]})
    classifiers: dict[str, nn.Module] = {"model": model}
    if baseline is not None:
        base_model = load_classifier(baseline).to(device)
        base_cfg = checkpoint_config({"config": base_model.info["config"]})
        if not _same_split(cfg, base_cfg):
            # Same test images or nothing: compare the splits themselves before refusing.
            a, b = load_test_split(cfg), load_test_split(base_cfg)
            if a.images.shape != b.images.shape or not torch.equal(a.images, b.images):
                raise ConfigError(
                    f"--baseline {baseline} was trained on dataset {base_cfg.dataset!r} (seed {base_cfg.seed}, "
                    f"test_fraction {base_cfg.test_fraction}), the model on {cfg.dataset!r} (seed {cfg.seed}, "
                    f"test_fraction {cfg.test_fraction}): their test splits differ")
        classifiers["baseline"] = base_model
    return cfg, classifiers


def _baseline_notes(model: Mapping[str, Any], base: Mapping[str, Any], bench: Sequence[str],
                    test_images: int) -> dict[str, Any]:
    """CE, mCE, relative CE and relative mCE of the model against the baseline, with their caveats."""
    found: dict[str, Any] = {"notes": []}
    try:
        found["ce"] = corruption_errors(model["error"], base["error"], names=bench)
        found["mce"] = mce(model["error"], base["error"], names=bench)
    except ValueError as exc:
        found["notes"].append(f"mCE undefined: {exc}")
    try:
        found["relative_ce"] = relative_corruption_errors(model["error"], model["clean_error"], base["error"],
                                                          base["clean_error"], names=bench)
        found["relative_mce"] = relative_mce(model["error"], model["clean_error"], base["error"],
                                             base["clean_error"], names=bench)
    except ValueError as exc:
        found["notes"].append(f"relative mCE undefined: {exc}")
    degradation = {c: sum(e - base["clean_error"] for e in base["error"][c]) for c in bench}
    improving = [c for c in bench if degradation[c] < 0]
    if improving:
        found["notes"].append(
            f"the baseline is more accurate on {', '.join(improving)} than on clean images: the relative CE "
            "of these corruptions divides by a negative degradation, so its sign is flipped")
    # Relative CE divides by the baseline's degradation: a handful of images makes it explode.
    fragile = {c: abs(d) * test_images for c, d in degradation.items() if abs(d) * test_images < 5}
    if fragile:
        found["notes"].append(
            "relative CE rests on a baseline degradation of fewer than 5 test images (summed over "
            "severities) for " + ", ".join(f"{c} ({v:.0f})" for c, v in fragile.items())
            + ": these ratios, and the relative mCE, are unreliable")
    return found


def _summary(results: Mapping[str, Any], classifiers: Mapping[str, nn.Module], cfg: Config, *,
             checkpoint: str | Path, baseline: str | Path | None, cifar_c: str | Path | None, seed: int,
             test_images: int, names: list[str], sevs: list[int]) -> dict[str, Any]:
    """Everything ``robustness.json`` holds (see :func:`run_robustness`)."""
    summary: dict[str, Any] = {
        "checkpoint": str(checkpoint), "baseline": str(baseline) if baseline is not None else None,
        "dataset": cfg.dataset, "source": f"cifar-c:{cifar_c}" if cifar_c is not None else "synthetic",
        "corruption_seed": seed, "test_images": test_images,
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
        models = summary["models"]
        summary.update(_baseline_notes(models["model"], models["baseline"], bench, test_images))
    return summary


def _csv_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per model, corruption and severity; severity 0 is the clean test set."""
    rows = []
    for model_name, r in summary["models"].items():
        rows.append({"model": model_name, "corruption": "clean", "severity": 0,
                     "accuracy": r["clean_accuracy"], "error": r["clean_error"]})
        for corruption in summary["corruptions"]:
            for sev, acc, err in zip(summary["severities"], r["accuracy"][corruption], r["error"][corruption]):
                rows.append({"model": model_name, "corruption": corruption, "severity": sev,
                             "accuracy": acc, "error": err})
    return rows


def run_robustness(checkpoint: str | Path, out: str | Path, *, baseline: str | Path | None = None,
                   corruptions: str | Sequence[str] = "all", severities: str | Sequence[int] = (1, 2, 3, 4, 5),
                   cifar_c: str | Path | None = None, seed: int = 0, device: str = "auto",
                   batch_size: int = 512, on_finish: RobustnessFinish | None = None,
                   on_result: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    """Robustness of a classifier checkpoint (and a baseline) to corruptions; writes ``out/``.

    Files: ``robustness.json`` (everything below) and ``robustness.csv`` (one row per model,
    corruption and severity; severity 0 is the clean test set). ``on_finish(summary, out)`` is
    called last, e.g. :func:`supcon.report.plots.write_robustness_plots` for the heatmap and the
    accuracy-against-severity plot; None writes no plots.

    mCE and relative mCE average over the evaluated corruptions that belong to the 15-corruption
    benchmark (the extra 4 are reported per corruption only); ``mce_complete`` says whether all 15
    at all 5 severities were evaluated, i.e. whether the numbers are the standard ones.

    Raises:
        ConfigError: bad corruption names, severities or batch size, or a baseline with another test split.
        CheckpointError, DatasetError: unreadable checkpoints, data or -C arrays.
    """
    names = parse_corruptions(corruptions)
    sevs = parse_severities(severities)
    _check_batch_size(batch_size)
    dev = resolve_device(device)
    out = Path(out)
    cfg, classifiers = _load_classifiers(checkpoint, baseline, dev)
    test = load_test_split(cfg)
    # a transfer probe's split (a gray dataset for an RGB encoder...) in the channels it trained on
    images = match_channels(test.images, int(classifiers["model"].info.get("channels") or test.channels))
    results = evaluate_robustness(classifiers, images, test.labels, names, sevs, seed=seed,
                                  cifar_c=cifar_c, batch_size=batch_size, device=dev, on_result=on_result)
    summary = _summary(results, classifiers, cfg, checkpoint=checkpoint, baseline=baseline, cifar_c=cifar_c,
                       seed=seed, test_images=int(test.images.shape[0]), names=names, sevs=sevs)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / ROBUSTNESS_JSON, json.dumps(summary, indent=2))
    write_csv_atomic(out / ROBUSTNESS_CSV, _csv_rows(summary))
    if on_finish is not None:
        on_finish(summary, out)
    return summary


def display_name(key: str, model: Mapping[str, Any]) -> str:
    """``"model (supcon)"``: a summary's model key with the method it was trained by, when known."""
    method = model.get("method")
    return f"{key} ({method})" if method and method != "?" else key


def robustness_rows(summary: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of a robustness summary, one row per model (the baseline scores 100)."""
    header = ["model", "clean acc (%)", "mean corrupted acc (%)", "mCE (%)", "relative mCE (%)"]
    rows = []
    scores = [summary.get("mce"), summary.get("relative_mce")]
    for key, m in summary["models"].items():
        shown = scores if key == "model" else [None if v is None else 100.0 for v in scores]
        rows.append([display_name(key, m), m["clean_accuracy"], m["mean_corrupted_accuracy"], *shown])
    return header, rows
