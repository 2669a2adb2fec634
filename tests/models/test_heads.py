"""Tests for supcon.models.heads: projection heads and the linear classifier."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from supcon.models.heads import LinearClassifier, ProjectionHead


@pytest.mark.parametrize("kind", ["mlp", "linear"])
def test_projection_head_unit_norm(kind: str) -> None:
    head = ProjectionHead(32, kind=kind, out_dim=16)
    x = torch.randn(5, 32) * 10
    out = head(x)
    assert out.shape == (5, 16)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(5))


def test_head_param_counts() -> None:
    mlp = ProjectionHead(64, kind="mlp", out_dim=128)
    linear = ProjectionHead(64, kind="linear", out_dim=128)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(mlp) == (64 * 64 + 64) + (64 * 128 + 128)
    assert count(linear) == 64 * 128 + 128
    assert count(ProjectionHead(64, hidden_dim=32, out_dim=8)) == (64 * 32 + 32) + (32 * 8 + 8)
    assert isinstance(mlp.net[1], nn.ReLU)


def test_projection_head_matches_formula() -> None:
    head = ProjectionHead(6, kind="mlp", out_dim=3)
    x = torch.randn(4, 6)
    lin1, lin2 = head.net[0], head.net[2]
    expected = F.normalize(lin2(lin1(x).clamp_min(0)), dim=1)
    torch.testing.assert_close(head(x), expected)


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda: ProjectionHead(8, kind="deep"), "kind"),
        (lambda: ProjectionHead(0), "in_dim"),
        (lambda: ProjectionHead(8, out_dim=0), "out_dim"),
        (lambda: ProjectionHead(8, hidden_dim=0), "hidden_dim"),
        (lambda: LinearClassifier(8, 0), "num_classes"),
        (lambda: LinearClassifier(0, 3), "in_dim"),
    ],
)
def test_heads_reject_bad_arguments(build, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        build()


def test_linear_classifier() -> None:
    clf = LinearClassifier(12, 5)
    assert isinstance(clf, nn.Linear)
    assert sum(p.numel() for p in clf.parameters()) == 12 * 5 + 5
    assert clf(torch.randn(3, 12)).shape == (3, 5)
