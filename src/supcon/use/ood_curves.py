"""Threshold-free metrics of an out-of-distribution detector: AUROC, AUPR and FPR at 95 % TPR.

Convention of :mod:`supcon.use.ood`: a *score* is higher for inputs that look more in-distribution, and
in-distribution inputs are the *positives*. Every metric treats tied scores as scikit-learn does (one
threshold per distinct score value), so the numbers equal ``roc_auc_score``, ``average_precision_score``
and the ``roc_curve`` they are tested against:

* AUROC: the area under the ROC curve, ``P(s_in > s_ood) + P(s_in = s_ood) / 2`` (Mann-Whitney U).
* AUPR-In: average precision with in-distribution as positive, ``sum_n (R_n - R_{n-1}) P_n`` over the
  thresholds from the highest score down. AUPR-Out: the same with OOD as positive and scores negated.
* FPR at 95 % TPR: the fraction of OOD inputs scored at or above the highest threshold that keeps at
  least 95 % of the in-distribution inputs (lower is better).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from supcon.config import ConfigError

__all__ = ["OOD_METRICS", "auroc", "aupr", "fpr_at_tpr", "ood_metrics"]

#: The metrics :func:`ood_metrics` returns, in table order.
OOD_METRICS: tuple[str, ...] = ("auroc", "aupr_in", "aupr_out", "fpr95")


def _scores(name: str, values: ArrayLike) -> np.ndarray:
    """``values`` as a 1-D float64 array, checked to be finite and non-empty."""
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ConfigError(f"{name} is empty: each side needs at least one score")
    if not np.isfinite(array).all():
        raise ConfigError(f"{name} holds {int((~np.isfinite(array)).sum())} non-finite scores")
    return array


def _curve(positive: np.ndarray, negative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative ``(true positives, false positives)`` at each distinct score, highest first."""
    scores = np.concatenate([positive, negative])
    is_pos = np.concatenate([np.ones(positive.size), np.zeros(negative.size)])
    order = np.argsort(-scores, kind="stable")
    scores, is_pos = scores[order], is_pos[order]
    last_of_value = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]  # a tie group's last index
    tp = np.cumsum(is_pos)[last_of_value]
    return tp, (last_of_value + 1) - tp


def auroc(in_scores: ArrayLike, ood_scores: ArrayLike) -> float:
    """Area under the ROC curve, in-distribution as positive (ties count one half). 0.5 = chance.

    Args:
        in_scores: ``(N_in,)`` scores of in-distribution inputs.
        ood_scores: ``(N_ood,)`` scores of OOD inputs.
    """
    pos, neg = _scores("in_scores", in_scores), _scores("ood_scores", ood_scores)
    tp, fp = _curve(pos, neg)
    tpr = np.r_[0.0, tp / pos.size]
    fpr = np.r_[0.0, fp / neg.size]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def aupr(in_scores: ArrayLike, ood_scores: ArrayLike, *, positive: str = "in") -> float:
    """Average precision (scikit-learn's step-wise area under the precision-recall curve).

    Args:
        in_scores, ood_scores: as :func:`auroc`.
        positive: ``"in"`` (AUPR-In: in-distribution inputs are the positives, high scores first) or
            ``"ood"`` (AUPR-Out: OOD inputs are the positives, low scores first).
    """
    pos, neg = _scores("in_scores", in_scores), _scores("ood_scores", ood_scores)
    if positive == "ood":
        pos, neg = -neg, -pos
    elif positive != "in":
        raise ConfigError(f"positive must be 'in' or 'ood', got {positive!r}")
    tp, fp = _curve(pos, neg)
    precision = tp / (tp + fp)
    recall = np.r_[0.0, tp / pos.size]
    return float(np.sum(np.diff(recall) * precision))


def fpr_at_tpr(in_scores: ArrayLike, ood_scores: ArrayLike, tpr: float = 0.95) -> float:
    """The false-positive rate (OOD inputs accepted) at the first threshold whose TPR reaches ``tpr``.

    Thresholds run from the highest score down, one per distinct value, so the point is scikit-learn's
    ``fpr[searchsorted(tpr_curve, tpr)]`` of ``roc_curve(drop_intermediate=False)``.

    Raises:
        ConfigError: ``tpr`` outside ``(0, 1]``.
    """
    if not (isinstance(tpr, (int, float)) and 0 < tpr <= 1):
        raise ConfigError(f"tpr must be in (0, 1], got {tpr!r}")
    pos, neg = _scores("in_scores", in_scores), _scores("ood_scores", ood_scores)
    tp, fp = _curve(pos, neg)
    # the smallest group index whose TPR reaches the target (a hair of slack for float rounding)
    reached = np.flatnonzero(tp >= tpr * pos.size - 1e-9 * pos.size)
    return float(fp[reached[0]] / neg.size)


def ood_metrics(in_scores: ArrayLike, ood_scores: ArrayLike) -> dict[str, float]:
    """``{"auroc", "aupr_in", "aupr_out", "fpr95"}`` of one score (see the module docstring), all in [0, 1].

    Args:
        in_scores: ``(N_in,)`` scores of the in-distribution test inputs (higher = more in-distribution).
        ood_scores: ``(N_ood,)`` scores of the OOD inputs.

    Raises:
        ConfigError: an empty side or a non-finite score.
    """
    return {"auroc": auroc(in_scores, ood_scores), "aupr_in": aupr(in_scores, ood_scores, positive="in"),
            "aupr_out": aupr(in_scores, ood_scores, positive="ood"), "fpr95": fpr_at_tpr(in_scores, ood_scores)}
