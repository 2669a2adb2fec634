"""Out-of-distribution scores of an encoder's representations (and of a classifier's logits).

Every score is *higher for inputs that look more in-distribution*. The representation scores are fitted
on the in-distribution training split's features, L2-normalised (``z = h / ||h||``):

* ``cosine``: ``max_c cos(z, mu_c)``, the cosine similarity to the nearest class mean ``mu_c`` (mean of
  the class's normalised training features).
* ``knn``: ``-||z - z_(k)||``, minus the distance to the k-th nearest normalised training feature
  (Sun et al., "Out-of-distribution detection with deep nearest neighbors", ICML 2022; k = 50 by
  default, their CIFAR-10 choice).
* ``mahalanobis``: ``-min_c (z - mu_c)^T S^+ (z - mu_c)`` with class means and one covariance ``S``
  shared by the classes (the tied estimate ``S = 1/N sum_i (z_i - mu_{y_i})(z_i - mu_{y_i})^T``) and its
  pseudo-inverse: the labelled SSD+ score on normalised features (Sehwag et al., "SSD: a unified
  framework for self-supervised outlier detection", ICLR 2021; Lee et al. 2018's tied covariance).

The classifier scores take logits ``f(x)``:

* ``msp``: ``max_c softmax(f(x))_c``, the maximum softmax probability (Hendrycks & Gimpel, ICLR 2017).
* ``energy``: ``T logsumexp(f(x) / T)`` with ``T = 1``, the negative free energy ``-E(x)`` (Liu et al.,
  "Energy-based out-of-distribution detection", NeurIPS 2020).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from supcon.config import ConfigError

__all__ = ["REPRESENTATION_SCORES", "CLASSIFIER_SCORES", "OOD_SCORES", "DEFAULT_K", "FeatureBank", "fit_bank",
           "cosine_score", "knn_score", "mahalanobis_score", "msp_score", "energy_score", "ood_scores"]

#: Scores computed from the representation (any checkpoint with an encoder).
REPRESENTATION_SCORES: tuple[str, ...] = ("cosine", "knn", "mahalanobis")
#: Scores computed from a classifier's logits (CE, linear-probe and fine-tune checkpoints).
CLASSIFIER_SCORES: tuple[str, ...] = ("msp", "energy")
#: Every score, in table order.
OOD_SCORES: tuple[str, ...] = REPRESENTATION_SCORES + CLASSIFIER_SCORES
#: The kNN score's default k (Sun et al. 2022's choice for CIFAR-10 with its full training set).
DEFAULT_K = 50


@dataclass(frozen=True)
class FeatureBank:
    """What the representation scores know of the in-distribution training split.

    Attributes:
        features: ``(M, D)`` float32 L2-normalised training features (the kNN memory).
        means: ``(K, D)`` float64 class means of the normalised features (classes without an example
            are left out).
        precision: ``(D, D)`` float64 pseudo-inverse of the tied (shared) class covariance.
    """

    features: Tensor
    means: Tensor
    precision: Tensor


def _features(name: str, features: Tensor) -> Tensor:
    if not isinstance(features, Tensor) or features.ndim != 2 or features.shape[0] == 0:
        shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
        raise ConfigError(f"{name} must be a non-empty (N, D) tensor, got {shape}")
    return features


def fit_bank(train_features: Tensor, train_labels: Tensor) -> FeatureBank:
    """Class means and the tied covariance's pseudo-inverse of normalised training features.

    Args:
        train_features: ``(M, D)`` representations of the in-distribution training split.
        train_labels: ``(M,)`` their class indices.

    Raises:
        ConfigError: shapes that do not match, or an empty split.
    """
    train_features = _features("train_features", train_features)
    if train_labels.shape != (train_features.shape[0],):
        raise ConfigError(f"train_labels has shape {tuple(train_labels.shape)}, expected ({train_features.shape[0]},) "
                          "like train_features")
    z = F.normalize(train_features.float(), dim=1)
    labels = train_labels.long().cpu()
    classes = torch.unique(labels)
    z64 = z.double().cpu()
    means = torch.stack([z64[labels == c].mean(0) for c in classes])
    centred = z64 - means[torch.searchsorted(classes, labels)]
    covariance = centred.T @ centred / z64.shape[0]
    precision = torch.linalg.pinv(covariance, hermitian=True)
    return FeatureBank(features=z.contiguous(), means=means, precision=precision)


def cosine_score(bank: FeatureBank, features: Tensor) -> Tensor:
    """``(N,)`` float64 ``max_c cos(z, mu_c)`` of ``features (N, D)``."""
    z = F.normalize(_features("features", features).double(), dim=1)
    return (z @ F.normalize(bank.means, dim=1).T).max(1).values


def knn_score(bank: FeatureBank, features: Tensor, k: int = DEFAULT_K, chunk: int = 1024) -> Tensor:
    """``(N,)`` float64 minus the distance of each normalised feature to its k-th nearest training feature.

    Raises:
        ConfigError: ``k`` below 1 or above the number of training features.
    """
    memory = bank.features
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= memory.shape[0]:
        raise ConfigError(f"k must be an int in 1..{memory.shape[0]} (the training features), got {k!r}")
    z = F.normalize(_features("features", features).float(), dim=1)
    out = []
    for start in range(0, z.shape[0], chunk):
        sims = z[start:start + chunk] @ memory.T  # unit vectors: ||a - b||^2 = 2 - 2 a.b
        kth = sims.topk(k, dim=1).values[:, -1].double()
        out.append(-(2 - 2 * kth).clamp_min(0).sqrt())
    return torch.cat(out)


def mahalanobis_score(bank: FeatureBank, features: Tensor) -> Tensor:
    """``(N,)`` float64 minus the smallest squared Mahalanobis distance to a class mean (tied covariance)."""
    z = F.normalize(_features("features", features).double(), dim=1)
    zp = z @ bank.precision  # (z - mu)^T P (z - mu) = z^T P z - 2 z^T P mu + mu^T P mu, P symmetric
    distances = ((zp * z).sum(1, keepdim=True) - 2 * zp @ bank.means.T
                 + ((bank.means @ bank.precision) * bank.means).sum(1)[None])
    return -distances.min(1).values


def msp_score(logits: Tensor) -> Tensor:
    """``(N,)`` float64 maximum softmax probability of ``logits (N, K)``."""
    return _features("logits", logits).double().softmax(1).max(1).values


def energy_score(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """``(N,)`` float64 ``T logsumexp(logits / T)`` (the negative energy) of ``logits (N, K)``."""
    if not temperature > 0:
        raise ConfigError(f"temperature must be positive, got {temperature!r}")
    return temperature * torch.logsumexp(_features("logits", logits).double() / temperature, dim=1)


def ood_scores(bank: FeatureBank, features: Tensor, logits: Tensor | None = None, *,
               scores: Sequence[str] | None = None, k: int = DEFAULT_K) -> dict[str, Tensor]:
    """Each asked-for score of ``features (N, D)`` (and ``logits (N, K)``): ``{name: (N,) float64}``.

    Args:
        bank: :func:`fit_bank` of the in-distribution training split.
        features: representations to score.
        logits: the classifier's logits of the same inputs, for ``msp`` and ``energy``.
        scores: names from :data:`OOD_SCORES`; default: the representation scores, plus the classifier
            scores when ``logits`` is given.
        k: the kNN score's neighbour.

    Raises:
        ConfigError: an unknown score, a classifier score without ``logits``, rows that do not match.
    """
    names = list(scores) if scores is not None else [
        *REPRESENTATION_SCORES, *(CLASSIFIER_SCORES if logits is not None else ())]
    unknown = [n for n in names if n not in OOD_SCORES]
    if unknown:
        raise ConfigError(f"unknown OOD score(s) {', '.join(map(repr, unknown))}; expected {', '.join(OOD_SCORES)}")
    if logits is None and any(n in CLASSIFIER_SCORES for n in names):
        raise ConfigError(f"scores {', '.join(n for n in names if n in CLASSIFIER_SCORES)} need a classifier's logits")
    if logits is not None and logits.shape[0] != features.shape[0]:
        raise ConfigError(f"logits has {logits.shape[0]} rows, features has {features.shape[0]}")
    compute: dict[str, Callable[[], Tensor]] = {
        "cosine": lambda: cosine_score(bank, features), "knn": lambda: knn_score(bank, features, k),
        "mahalanobis": lambda: mahalanobis_score(bank, features),
        "msp": lambda: msp_score(logits), "energy": lambda: energy_score(logits)}  # type: ignore[arg-type]
    return {name: compute[name]() for name in names}
