"""AUROC, AUPR and FPR at 95 % TPR of :mod:`supcon.use.ood_curves` against scikit-learn, ties included."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from supcon.config import ConfigError
from supcon.use.ood_curves import OOD_METRICS, aupr, auroc, fpr_at_tpr, ood_metrics


def _sklearn(in_scores: np.ndarray, ood_scores: np.ndarray, tpr: float = 0.95) -> dict[str, float]:
    """The same four numbers from scikit-learn (in-distribution = label 1)."""
    y = np.r_[np.ones(in_scores.size), np.zeros(ood_scores.size)]
    s = np.r_[in_scores, ood_scores]
    fpr, tpr_curve, _ = roc_curve(y, s, drop_intermediate=False)
    return {"auroc": roc_auc_score(y, s), "aupr_in": average_precision_score(y, s),
            "aupr_out": average_precision_score(1 - y, -s),
            "fpr95": float(fpr[np.searchsorted(tpr_curve, tpr - 1e-12)])}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("levels", [3, 20, None])  # few distinct values (many ties), some, continuous
def test_metrics_match_sklearn(seed, levels):
    rng = np.random.default_rng(seed)
    n_in, n_ood = rng.integers(1, 80, size=2)
    if levels is None:
        a, b = rng.normal(1, 1, n_in), rng.normal(0, 1, n_ood)
    else:
        a, b = rng.integers(0, levels, n_in).astype(float), rng.integers(-1, levels - 1, n_ood).astype(float)
    ours, theirs = ood_metrics(a, b), _sklearn(a, b)
    assert list(ours) == list(OOD_METRICS)
    for name in OOD_METRICS:
        assert ours[name] == pytest.approx(theirs[name], abs=1e-12), name


@pytest.mark.parametrize("tpr", [0.5, 0.8, 0.9, 0.95, 1.0])
def test_fpr_at_other_tpr_matches_roc_curve(tpr):
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 6, 40).astype(float), rng.integers(0, 5, 37).astype(float)
    assert fpr_at_tpr(a, b, tpr) == pytest.approx(_sklearn(a, b, tpr)["fpr95"])


def test_closed_form_cases():
    # perfectly separated, in above
    assert ood_metrics([3, 4, 5], [0, 1, 2]) == {"auroc": 1.0, "aupr_in": 1.0, "aupr_out": 1.0, "fpr95": 0.0}
    # reversed: every OOD input scores higher, so all of them pass before any in-distribution one
    assert auroc([0, 1], [2, 3]) == 0.0 and fpr_at_tpr([0, 1], [2, 3]) == 1.0
    # one tie group holding everything: chance, and the threshold accepts every OOD input
    same = ood_metrics(np.ones(10), np.ones(30))
    assert same["auroc"] == 0.5 and same["fpr95"] == 1.0
    assert same["aupr_in"] == pytest.approx(10 / 40) and same["aupr_out"] == pytest.approx(30 / 40)
    # ties count one half: P(in > ood) = 1/4, P(tie) = 1/2
    assert auroc([1, 2], [1, 1]) == pytest.approx(0.5 * 1 + 0.5 * 0.5)


def test_identical_distributions_are_chance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=5000)
    b = rng.normal(size=5000)
    assert auroc(a, b) == pytest.approx(0.5, abs=0.02)
    assert fpr_at_tpr(a, b) == pytest.approx(0.95, abs=0.02)
    assert auroc(a, a) == 0.5  # the same scores on both sides


@pytest.mark.parametrize("args, match", [
    (([], [1.0]), "in_scores is empty"),
    (([1.0], []), "ood_scores is empty"),
    (([1.0, np.nan], [1.0]), "in_scores holds 1 non-finite"),
    (([1.0], [np.inf]), "ood_scores holds 1 non-finite"),
])
def test_bad_scores(args, match):
    with pytest.raises(ConfigError, match=match):
        ood_metrics(*args)


def test_bad_options():
    with pytest.raises(ConfigError, match="positive must be 'in' or 'ood'"):
        aupr([1], [0], positive="both")
    with pytest.raises(ConfigError, match="tpr must be in"):
        fpr_at_tpr([1], [0], tpr=0)
