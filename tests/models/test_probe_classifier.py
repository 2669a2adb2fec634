"""The standardised linear probe: any feature scale trains at the same learning rate."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from supcon.models import LinearClassifier, ProbeClassifier


def _train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float = 0.1, steps: int = 60) -> list[float]:
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses = []
    for step in range(steps):
        idx = torch.arange(step * 16, step * 16 + 16) % x.shape[0]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return losses


def test_large_features_train_the_standardised_probe_and_explode_the_plain_one():
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (256,), generator=gen)
    centres = torch.randn(4, 32, generator=gen)
    x = (centres[y] + 0.5 * torch.randn(256, 32, generator=gen)) * 1000.0  # an untrained ResNet's scale
    torch.manual_seed(0)
    probe_losses = _train(ProbeClassifier(32, 4), x, y)
    torch.manual_seed(0)
    plain_losses = _train(LinearClassifier(32, 4), x, y)
    assert all(torch.isfinite(torch.tensor(probe_losses)))
    assert max(probe_losses[-10:]) < 0.5 < probe_losses[0]
    assert max(plain_losses) > 100  # the failure the standardisation prevents


def test_eval_mode_uses_the_training_statistics_and_keeps_shapes():
    probe = ProbeClassifier(8, 3)
    x = torch.randn(64, 8) * 50 + 7
    probe.train()
    for _ in range(200):
        probe(x)
    probe.eval()
    assert torch.allclose(probe.norm.running_mean, x.mean(0), atol=1e-3)
    assert probe(x[:5]).shape == (5, 3)
    assert set(probe.state_dict()) == {"norm.running_mean", "norm.running_var", "norm.num_batches_tracked",
                                       "linear.weight", "linear.bias"}
