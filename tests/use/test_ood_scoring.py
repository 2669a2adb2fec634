"""The OOD scores of :mod:`supcon.use.ood_scoring`: each against a loop over the paper's equation, and on
synthetic features whose answer is known (far away -> AUROC ~1, the same distribution -> ~0.5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from supcon.config import ConfigError
from supcon.use.ood_curves import auroc
from supcon.use.ood_scoring import (CLASSIFIER_SCORES, OOD_SCORES, REPRESENTATION_SCORES, cosine_score, energy_score,
                                    fit_bank, knn_score, mahalanobis_score, msp_score, ood_scores)


def _clusters(n_per_class: int, classes: int, dim: int, seed: int, centre_scale: float = 3.0,
              offset: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian clusters around fixed class centres (+ ``offset``): ``(N, dim)`` features and labels."""
    centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(123)) * centre_scale
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    feats = centres[labels] + torch.randn(len(labels), dim, generator=gen)
    return (feats + offset if offset is not None else feats), labels


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x.double() / x.double().norm(dim=1, keepdim=True)


def test_scores_match_loops_over_the_equations():
    train, labels = _clusters(12, 3, 5, seed=0)
    queries, _ = _clusters(4, 3, 5, seed=1)
    bank = fit_bank(train, labels)
    z_train, z = _unit(train), _unit(queries)
    means = [z_train[labels == c].mean(0) for c in range(3)]
    cov = sum(torch.outer(z_train[i] - means[int(labels[i])], z_train[i] - means[int(labels[i])])
              for i in range(len(labels))) / len(labels)
    precision = torch.linalg.pinv(cov)
    k = 7
    for i in range(len(queries)):
        cos = max(float(z[i] @ m / m.norm()) for m in means)
        dists = sorted(float((z[i] - z_train[j]).norm()) for j in range(len(train)))
        maha = min(float((z[i] - m) @ precision @ (z[i] - m)) for m in means)
        assert cosine_score(bank, queries)[i].item() == pytest.approx(cos, abs=1e-6)
        assert knn_score(bank, queries, k)[i].item() == pytest.approx(-dists[k - 1], abs=1e-5)
        assert mahalanobis_score(bank, queries)[i].item() == pytest.approx(-maha, rel=1e-6, abs=1e-6)


def test_knn_chunks_and_k1_on_the_memory():
    train, labels = _clusters(10, 2, 4, seed=0)
    bank = fit_bank(train, labels)
    whole = knn_score(bank, train, 3)
    assert torch.allclose(knn_score(bank, train, 3, chunk=3), whole)
    assert knn_score(bank, train, 1).abs().max() < 1e-3  # each training feature is its own nearest neighbour


def test_msp_and_energy_closed_form():
    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0], [10.0, -10.0]])
    assert msp_score(logits).tolist() == pytest.approx([0.5, math.exp(2) / (math.exp(2) + 1), 1.0], abs=1e-8)
    expected = [math.log(2), math.log(math.exp(2) + 1), math.log(math.exp(10) + math.exp(-10))]
    assert energy_score(logits).tolist() == pytest.approx(expected)
    assert energy_score(logits, temperature=2.0).tolist() == pytest.approx(
        [2 * math.log(math.exp(a / 2) + math.exp(b / 2)) for a, b in logits.tolist()])


def test_far_away_ood_is_separated_and_the_same_distribution_is_chance():
    train, labels = _clusters(60, 4, 16, seed=0)
    bank = fit_bank(train, labels)
    inside, _ = _clusters(50, 4, 16, seed=1)
    same, _ = _clusters(50, 4, 16, seed=2)
    far, _ = _clusters(50, 4, 16, seed=3, offset=torch.full((16,), 25.0))  # another direction entirely
    logits_w = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    in_s = ood_scores(bank, inside, inside @ logits_w)
    same_s = ood_scores(bank, same, same @ logits_w)
    far_s = ood_scores(bank, far, far @ logits_w)
    assert list(in_s) == list(OOD_SCORES)
    for name in REPRESENTATION_SCORES:
        assert auroc(in_s[name].numpy(), far_s[name].numpy()) > 0.99, name
        assert auroc(in_s[name].numpy(), same_s[name].numpy()) == pytest.approx(0.5, abs=0.1), name
    for name in CLASSIFIER_SCORES:  # the same distribution through the same classifier: chance
        assert auroc(in_s[name].numpy(), same_s[name].numpy()) == pytest.approx(0.5, abs=0.1), name


def test_singular_covariance_uses_the_pseudo_inverse():
    # fewer training features than dimensions: the covariance is singular, the score stays finite
    train, labels = _clusters(2, 2, 32, seed=0)
    score = mahalanobis_score(fit_bank(train, labels), _clusters(3, 2, 32, seed=1)[0])
    assert torch.isfinite(score).all()


def test_default_names_and_selection():
    train, labels = _clusters(5, 2, 3, seed=0)
    bank = fit_bank(train, labels)
    assert list(ood_scores(bank, train, k=3)) == list(REPRESENTATION_SCORES)
    assert list(ood_scores(bank, train, scores=["knn"], k=2)) == ["knn"]
    assert all(s.dtype == torch.float64 and s.shape == (10,) for s in ood_scores(bank, train, k=3).values())


@pytest.mark.parametrize("call, match", [
    (lambda b, x: ood_scores(b, x, scores=["odin"]), "unknown OOD score"),
    (lambda b, x: ood_scores(b, x, scores=["msp"]), "msp need a classifier's logits"),
    (lambda b, x: ood_scores(b, x, torch.zeros(3, 2)), "logits has 3 rows, features has 10"),
    (lambda b, x: knn_score(b, x, 11), r"k must be an int in 1..10"),
    (lambda b, x: knn_score(b, x, 0), r"k must be an int in 1..10"),
    (lambda b, x: cosine_score(b, torch.zeros(0, 3)), "features must be a non-empty"),
    (lambda b, x: energy_score(torch.zeros(2, 2), temperature=0), "temperature must be positive"),
    (lambda b, x: fit_bank(x, torch.zeros(9)), r"train_labels has shape \(9,\)"),
])
def test_bad_arguments(call, match):
    train, labels = _clusters(5, 2, 3, seed=0)
    with pytest.raises(ConfigError, match=match):
        call(fit_bank(train, labels), train)


def test_labels_need_not_be_contiguous():
    train, labels = _clusters(6, 3, 4, seed=0)
    bank = fit_bank(train, labels * 5 + 2)  # classes 2, 7, 12
    assert bank.means.shape == (3, 4)
    assert np.allclose(mahalanobis_score(bank, train).numpy(), mahalanobis_score(fit_bank(train, labels), train).numpy())
