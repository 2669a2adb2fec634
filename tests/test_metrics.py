"""Evaluation loops: features, predictions, accuracy, kNN and confusion counts against direct computations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from supcon.augment import Normalize
from supcon.metrics import (Inference, accuracy, confusion_matrix, evaluate_classifier, extract_features,
                            balanced_accuracy, forward_batches, knn_accuracy, per_class_accuracy, predict)


def _images(n: int = 10) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 4, 4), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def test_forward_batches_match_one_big_forward_and_restore_training_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 5), nn.Dropout(0.5))
    norm = Normalize((0.5, 0.4, 0.3), (0.2, 0.3, 0.4))
    images = _images()
    out = torch.cat(list(forward_batches(model, images, norm, Inference(batch_size=3))))
    model.eval()
    expected = model(norm(images.float() / 255))
    assert torch.allclose(out, expected, atol=1e-6)
    model.train()
    extract_features(model, images, norm, Inference(batch_size=4))
    assert model.training
    assert extract_features(model, images[:0]).numel() == 0


def test_predict_accuracy_and_evaluate_classifier():
    weights = torch.eye(3)

    class Pick(nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3)) @ weights

    images = torch.zeros(4, 3, 2, 2, dtype=torch.uint8)
    for i, c in enumerate([0, 1, 2, 1]):
        images[i, c] = 255
    pred = predict(Pick(), images)
    assert pred.tolist() == [0, 1, 2, 1]
    assert accuracy(pred, torch.tensor([0, 1, 0, 1])) == pytest.approx(75.0)
    assert accuracy(pred[:0], pred[:0]) == 0.0
    result = evaluate_classifier(Pick(), images, torch.tensor([0, 1, 2, 0]))
    assert result["accuracy"] == pytest.approx(75.0)
    assert result["predictions"].tolist() == [0, 1, 2, 1]


def test_knn_accuracy_against_a_loop_over_queries():
    gen = torch.Generator().manual_seed(1)
    train, test = torch.randn(40, 6, generator=gen), torch.randn(15, 6, generator=gen)
    train_y, test_y = torch.randint(0, 3, (40,), generator=gen), torch.randint(0, 3, (15,), generator=gen)
    k, tau = 5, 0.1
    correct = 0
    tn = train / train.norm(dim=1, keepdim=True)
    for q, y in zip(test, test_y):
        sims = tn @ (q / q.norm())
        top, idx = sims.topk(k)
        votes = torch.zeros(3)
        for s, i in zip(top, idx):
            votes[train_y[i]] += torch.exp(s / tau)
        correct += int(votes.argmax() == y)
    assert knn_accuracy(train, train_y, test, test_y, 3, k=k, tau=tau, chunk=4) == pytest.approx(100 * correct / 15)


def test_confusion_matrix_counts_and_shape_check():
    m = confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]), 3)
    assert m.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    with pytest.raises(ValueError, match="predictions has shape"):
        confusion_matrix(torch.tensor([0]), torch.tensor([0, 1]), 2)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_balanced_accuracy_matches_scikit_learn():
    from sklearn.metrics import balanced_accuracy_score

    gen = torch.Generator().manual_seed(0)
    for trial in range(20):
        labels = torch.randint(0, 5, (60,), generator=gen)
        labels[labels == trial % 5] = (trial + 1) % 5  # one class absent from the labels
        predictions = torch.where(torch.rand(60, generator=gen) < 0.6, labels, torch.randint(0, 6, (60,), generator=gen))
        expected = 100.0 * balanced_accuracy_score(labels.numpy(), predictions.numpy())
        assert balanced_accuracy(predictions, labels) == pytest.approx(expected, abs=1e-9)


def test_per_class_accuracy_is_the_recall_of_each_class():
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 3])
    predictions = torch.tensor([0, 0, 1, 2, 1, 0, 3])
    per_class = per_class_accuracy(predictions, labels, 4)
    assert per_class[:2].tolist() == [50.0, 50.0] and per_class[3].item() == 100.0
    assert per_class[2].isnan()  # no example of class 2
    assert balanced_accuracy(predictions, labels) == pytest.approx(200 / 3)
    assert balanced_accuracy(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)) == 0.0
