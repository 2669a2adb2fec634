"""The gradient decomposition of L_out / L_in (paper section 3.2, supplementary section 7) against
autograd through supcon_loss, a loop-over-anchors reference from the equations, and the analysis
command on a tiny pretrained encoder."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from supcon.cli import main
from supcon.config import config_from_dict
from supcon.eval.gradients import (
    analyze_gradients,
    anchor_gradients,
    gradient_coefficients,
    gradient_pairs,
    loss_gradients,
)
from supcon.losses import supcon_loss
from supcon.train.methods import pretrain
from tiny_runs import TINY_SETTINGS

VARIANTS = ["out", "in"]


def embeddings(n: int = 12, dim: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-norm float64 rows and labels with classes of 1 (no positive), 2, 3 and 6 rows."""
    gen = torch.Generator().manual_seed(seed)
    z = F.normalize(torch.randn(n, dim, generator=gen, dtype=torch.float64), dim=1)
    labels = torch.tensor([0, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 3])[:n]
    return z, labels


def reference_coefficients(z: torch.Tensor, labels: torch.Tensor, t: float, variant: str) -> torch.Tensor:
    """C[i, j] = P_ij - X_ij written out anchor by anchor, from the paper's equations."""
    n = z.shape[0]
    coef = torch.zeros(n, n, dtype=z.dtype)
    for i in range(n):
        others = [a for a in range(n) if a != i]
        positives = [p for p in others if labels[p] == labels[i]]
        if not positives:
            continue
        den = sum(math.exp(float(z[i] @ z[a]) / t) for a in others)
        pos_den = sum(math.exp(float(z[i] @ z[p]) / t) for p in positives)
        for j in others:
            p_ij = math.exp(float(z[i] @ z[j]) / t) / den
            if j in positives:
                x_ij = 1 / len(positives) if variant == "out" else math.exp(float(z[i] @ z[j]) / t) / pos_den
            else:
                x_ij = 0.0
            coef[i, j] = p_ij - x_ij
    return coef


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("t", [0.1, 0.5])
def test_coefficients_match_the_equations(variant, t):
    z, labels = embeddings()
    assert torch.allclose(gradient_coefficients(z, labels, t, variant), reference_coefficients(z, labels, t, variant),
                          atol=1e-12)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("t", [0.1, 0.5])
def test_per_term_sum_equals_autograd_for_each_anchor(variant, t):
    """dL_i/dz_i = (1/t)[sum_p z_p (P_ip - X_ip) + sum_n z_n P_in], L_i alone, w.r.t. normalised z."""
    z, labels = embeddings()
    rows = z.clone().requires_grad_(True)
    losses = supcon_loss(rows, labels, temperature=t, variant=variant, normalize=False, reduction="none",
                         chunk_size=None)
    coef = gradient_coefficients(z, labels, t, variant)
    mine = anchor_gradients(z, labels, t, variant)
    positives = (labels[:, None] == labels[None, :]) & ~torch.eye(len(labels), dtype=torch.bool)
    for i in range(len(labels)):
        (grad,) = torch.autograd.grad(losses[i], rows, retain_graph=True)
        # the anchor's own gradient, as the sum of its per-positive and per-negative terms
        terms = [z[p] * coef[i, p] / t for p in range(len(labels)) if positives[i, p]]
        terms += [z[n] * coef[i, n] / t for n in range(len(labels)) if n != i and not positives[i, n]]
        total = torch.stack(terms).sum(0)
        assert torch.allclose(total, grad[i], atol=1e-10), i
        assert torch.allclose(mine[i], grad[i], atol=1e-10), i
        # the other rows enter L_i only through z_i . z_j
        others = torch.arange(len(labels)) != i
        assert torch.allclose(grad[others], coef[i, others, None] * z[i] / t, atol=1e-10), i
    # the anchor without a positive (label 0) contributes no loss and no gradient
    assert float(losses[0].detach()) == 0.0 and torch.all(coef[0] == 0)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_whole_loss_gradient_from_the_decomposition(variant, reduction):
    """The mean reduction divides by the anchors that have a positive (11 of the 12 rows)."""
    z, labels = embeddings()
    rows = z.clone().requires_grad_(True)
    loss = supcon_loss(rows, labels, temperature=0.2, variant=variant, normalize=False, reduction=reduction,
                       chunk_size=None)
    (grad,) = torch.autograd.grad(loss, rows)
    assert torch.allclose(loss_gradients(z, labels, 0.2, variant, reduction), grad, atol=1e-10)


@pytest.mark.parametrize("variant", VARIANTS)
def test_view_major_features_layout(variant):
    """(batch, views, dim) features flatten view-major, with labels repeated per view."""
    gen = torch.Generator().manual_seed(3)
    features = F.normalize(torch.randn(5, 2, 4, generator=gen, dtype=torch.float64), dim=-1)
    labels = torch.tensor([0, 1, 0, 2, 1])
    feats = features.clone().requires_grad_(True)
    loss = supcon_loss(feats, labels, temperature=0.1, variant=variant, normalize=False, chunk_size=None)
    (grad,) = torch.autograd.grad(loss, feats)
    rows = features.transpose(0, 1).reshape(10, 4)
    mine = loss_gradients(rows, labels.repeat(2), 0.1, variant).reshape(2, 5, 4).transpose(0, 1)
    assert torch.allclose(mine, grad, atol=1e-10)


def test_projected_magnitude_is_the_gradient_through_the_normalisation():
    """For ||w_i|| = 1, dL_i/dw_i = (I - z_i z_i^T) dL_i/dz_i; each term's norm is |C| sqrt(1 - s^2) / t."""
    z, labels = embeddings()
    t, i = 0.1, 5
    w = z.clone().requires_grad_(True)
    losses = supcon_loss(w, labels, temperature=t, normalize=True, reduction="none", chunk_size=None)
    (grad,) = torch.autograd.grad(losses[i], w)
    projector = torch.eye(z.shape[1], dtype=z.dtype) - torch.outer(z[i], z[i])
    assert torch.allclose(grad[i], projector @ anchor_gradients(z, labels, t)[i], atol=1e-10)
    pairs = gradient_pairs(z, labels, t)
    coef = gradient_coefficients(z, labels, t)
    sel = pairs["anchor"] == i
    others = [j for j in range(len(labels)) if j != i]
    expected = torch.stack([(projector @ z[j]).norm() * coef[i, j].abs() / t for j in others])
    assert torch.allclose(pairs["projected"][sel], expected, atol=1e-10)


def test_hard_terms_dominate_and_l_in_starves_hard_positives():
    """An anchor at 0 deg, positives at 10/45/80 deg, negatives at 30/60/100/150 deg (t = 0.1)."""
    angles = [0, 10, 45, 80, 30, 60, 100, 150]
    z = torch.tensor([[math.cos(math.radians(a)), math.sin(math.radians(a))] for a in angles], dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 0, 1, 2, 3, 4])
    proj = {v: gradient_pairs(z, labels, 0.1, v) for v in VARIANTS}
    out = proj["out"]["projected"][proj["out"]["anchor"] == 0]  # order: rows 1..7
    inn = proj["in"]["projected"][proj["in"]["anchor"] == 0]
    # L_out: the harder the positive (lower similarity), the larger its term.
    assert out[0] < out[1] < out[2]
    # Negatives, both losses: the hardest (most similar) one carries the largest term.
    for m in (out, inn):
        assert m[3] > m[4] > m[5] and m[3] > m[6]
    # L_in weights positives by exp(s): the hardest positive gets far less than under L_out.
    assert inn[2] < 0.01 * out[2]


def test_analyze_gradients_summaries():
    z, labels = embeddings()
    result = analyze_gradients(z, labels, 0.1, bins=4)
    for variant in VARIANTS:
        s = result[variant]["summary"]
        positives = int(((labels[:, None] == labels[None, :]).sum() - len(labels)))
        assert s["positives"]["pairs"] == positives
        assert s["positives"]["pairs"] + s["negatives"]["pairs"] == 11 * 11
        binned = [b for b in result[variant]["binned"] if b["kind"] == "negatives"]
        assert sum(b["pairs"] for b in binned) == s["negatives"]["pairs"]
        assert 0 <= s["negatives"]["hard_half_share_projected"] <= 1


def test_gradients_command_on_a_tiny_pretrained_encoder(tiny_npz, tmp_path, capsys):
    cfg = config_from_dict({"dataset": f"npz:{tiny_npz}", **TINY_SETTINGS})
    pretrain(cfg, tmp_path / "pre")
    out = tmp_path / "grad"
    assert main(["gradients", "--checkpoint", str(tmp_path / "pre" / "checkpoint.pt"), "--batch", "16",
                 "--bins", "3", "--device", "cpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| L_out | positives |" in printed and "| L_in | negatives |" in printed
    data = json.loads((out / "gradients.json").read_text())
    assert data["images"] == 16 and data["anchors"] == 32 and data["temperature"] == cfg.temperature
    assert (out / "gradients.png").is_file() and (out / "gradients.csv").is_file()
    assert main(["gradients", "--checkpoint", str(tmp_path / "pre" / "checkpoint.pt"), "--batch", "1",
                 "--out", str(out)]) == 2
    assert "--batch must be >= 2" in capsys.readouterr().err
