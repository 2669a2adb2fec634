"""Features and accuracies of trained models: one place for every evaluation loop.

Training, the linear probe, kNN, robustness and reports all score models through these functions:
:func:`forward_batches` runs a model over uint8 images in eval mode (no augmentation), and the
rest build on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from supcon.augment import to_float_images
from supcon.devices import autocast, memory_format

__all__ = ["Inference", "forward_batches", "extract_features", "predict", "accuracy",
           "evaluate_classifier", "knn_accuracy", "confusion_matrix", "per_class_accuracy", "balanced_accuracy"]


@dataclass(frozen=True)
class Inference:
    """Where and how models are evaluated: device, autocast dtype, memory layout, batch size."""

    device: torch.device = torch.device("cpu")
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    batch_size: int = 512


@torch.no_grad()
def forward_batches(model: nn.Module, images: Tensor, normalize: Callable[[Tensor], Tensor] | None = None,
                    how: Inference = Inference()) -> Iterator[Tensor]:
    """``model`` outputs (float32) for ``images (N, C, H, W)`` uint8, batch by batch, in eval mode.

    ``normalize`` (when given) is applied to the ``[0, 1]`` float images before the model; the
    model's training mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        for start in range(0, images.shape[0], how.batch_size):
            x = to_float_images(images[start:start + how.batch_size].to(how.device, non_blocking=True))
            if normalize is not None:
                x = normalize(x)
            with autocast(how.device, how.amp_dtype):
                out = model(memory_format(x, how.device, how.channels_last))
            yield out.float()
    finally:
        model.train(was_training)


def extract_features(encoder: nn.Module, images: Tensor, normalize: Callable[[Tensor], Tensor] | None = None,
                     how: Inference = Inference()) -> Tensor:
    """Encoder representations (no augmentation, eval mode) for uint8 images: ``(N, out_dim)``."""
    out = list(forward_batches(encoder, images, normalize, how))
    return torch.cat(out) if out else torch.zeros(0)


def predict(model: nn.Module, images: Tensor, normalize: Callable[[Tensor], Tensor] | None = None,
            how: Inference = Inference()) -> Tensor:
    """Predicted classes ``(N,)`` (argmax of ``model``'s logits), on the CPU."""
    preds = [logits.argmax(1).cpu() for logits in forward_batches(model, images, normalize, how)]
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)


def accuracy(predictions: Tensor, labels: Tensor) -> float:
    """Top-1 accuracy in percent (0 for an empty split)."""
    if predictions.numel() == 0:
        return 0.0
    return 100.0 * (predictions.cpu() == labels.cpu()).float().mean().item()


def evaluate_classifier(model: nn.Module, images: Tensor, labels: Tensor,
                        normalize: Callable[[Tensor], Tensor] | None = None,
                        how: Inference = Inference()) -> dict[str, float | Tensor]:
    """Top-1 accuracy (%) of ``model`` (images -> logits) on uint8 images, and its predictions."""
    pred = predict(model, images, normalize, how)
    return {"accuracy": accuracy(pred, labels), "predictions": pred}


def knn_accuracy(train_feats: Tensor, train_labels: Tensor, test_feats: Tensor, test_labels: Tensor,
                 num_classes: int, k: int = 20, tau: float = 0.07, chunk: int = 1024) -> float:
    """Weighted kNN top-1 (%) on cosine similarity (Wu et al. 2018's vote, weight ``exp(s / tau)``).

    Args:
        train_feats, train_labels: the memory, ``(M, D)`` and ``(M,)``.
        test_feats, test_labels: the queries, ``(N, D)`` and ``(N,)``.
    """
    train_feats = F.normalize(train_feats.float(), dim=1)
    test_feats = F.normalize(test_feats.float(), dim=1)
    train_labels = train_labels.to(train_feats.device)
    test_labels = test_labels.to(test_feats.device)
    k = min(k, train_feats.shape[0])
    correct = 0
    for start in range(0, test_feats.shape[0], chunk):
        sims = test_feats[start:start + chunk] @ train_feats.T
        top, idx = sims.topk(k, dim=1)
        votes = torch.zeros(sims.shape[0], num_classes, device=sims.device)
        votes.scatter_add_(1, train_labels[idx], torch.exp(top / tau))
        correct += (votes.argmax(1) == test_labels[start:start + chunk]).sum().item()
    return 100.0 * correct / max(1, test_feats.shape[0])


def confusion_matrix(predictions: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """``(num_classes, num_classes)`` counts, rows the true class, columns the prediction."""
    if predictions.shape != labels.shape:
        raise ValueError(f"predictions has shape {tuple(predictions.shape)}, labels {tuple(labels.shape)}")
    index = labels.long() * num_classes + predictions.long()
    return torch.bincount(index, minlength=num_classes * num_classes).view(num_classes, num_classes)


def per_class_accuracy(predictions: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """``(num_classes,)`` float64 accuracy (%) on each true class (its recall); NaN for a class with
    no example in ``labels``."""
    counts = confusion_matrix(predictions.cpu(), labels.cpu(), num_classes).double()
    support = counts.sum(1)
    recall = 100.0 * counts.diagonal() / support.clamp_min(1)
    return torch.where(support > 0, recall, torch.full_like(recall, float("nan")))


def balanced_accuracy(predictions: Tensor, labels: Tensor) -> float:
    """The mean of the per-class accuracies (%) over the classes present in ``labels``
    (scikit-learn's ``balanced_accuracy_score`` x 100); 0 for an empty split."""
    if labels.numel() == 0:
        return 0.0
    num_classes = int(max(labels.max().item(), predictions.max().item())) + 1
    per_class = per_class_accuracy(predictions, labels, num_classes)
    return float(per_class[~per_class.isnan()].mean())
