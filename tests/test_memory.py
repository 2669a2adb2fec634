"""supcon.memory: the label queue (FIFO order, labels, wrap-around, state), the momentum encoder's
exact EMA, the loss with a queue against the loss on the concatenated set (and the loop
reference), and an engine run with --queue-size resumed after a crash."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reference_losses import reference_supcon_loss
from supcon import supcon_loss
from supcon.memory import UNLABELED, LabelQueue, MomentumEncoder, MomentumQueue
from supcon.train import loop
from supcon.train import methods as engine

# ---------------------------------------------------------------------------------------------
# LabelQueue
# ---------------------------------------------------------------------------------------------


def _rows(values: list[int], dim: int = 3) -> torch.Tensor:
    """Row i is value_i repeated: a feature that names its own label."""
    return torch.tensor(values, dtype=torch.float32)[:, None].repeat(1, dim)


def test_queue_is_fifo_with_aligned_labels_across_wrap_around():
    q = LabelQueue(5, 3)
    assert len(q) == 0 and q.get()[0].shape == (0, 3)
    q.enqueue(_rows([0, 1, 2]), torch.tensor([0, 1, 2]))
    feats, labels = q.get()
    assert labels.tolist() == [0, 1, 2] and torch.equal(feats, _rows([0, 1, 2]))
    q.enqueue(_rows([3, 4, 5, 6]), torch.tensor([3, 4, 5, 6]))  # wraps: 0 and 1 fall out
    feats, labels = q.get()
    assert labels.tolist() == [2, 3, 4, 5, 6]
    assert torch.equal(feats, _rows([2, 3, 4, 5, 6]))
    assert len(q) == 5 and q.ptr == 2
    q.enqueue(_rows([7, 8, 9, 10, 11]), torch.tensor([7, 8, 9, 10, 11]))  # exactly one full queue
    feats, labels = q.get()
    assert labels.tolist() == [7, 8, 9, 10, 11] and torch.equal(feats, _rows([7, 8, 9, 10, 11]))


def test_queue_stores_unlabeled_rows_detached():
    q = LabelQueue(4, 2)
    x = torch.randn(2, 2, requires_grad=True)
    q.enqueue(x * 2)
    feats, labels = q.get()
    assert labels.tolist() == [UNLABELED, UNLABELED]
    assert not feats.requires_grad and torch.equal(feats, (x * 2).detach())


def test_queue_errors_name_the_problem():
    q = LabelQueue(4, 2)
    with pytest.raises(ValueError, match="queue of size 4"):
        q.enqueue(torch.zeros(5, 2), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        q.enqueue(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="labels must have shape"):
        q.enqueue(torch.zeros(2, 2), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="integers"):
        q.enqueue(torch.zeros(2, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="size must be a positive int"):
        LabelQueue(0, 2)


def test_queue_state_dict_round_trip_and_mismatch():
    q = LabelQueue(4, 2)
    q.enqueue(torch.randn(3, 2), torch.tensor([1, 2, 3]))
    q.enqueue(torch.randn(3, 2), torch.tensor([4, 5, 6]))
    r = LabelQueue(4, 2)
    r.load_state_dict(q.state_dict())
    for a, b in zip(q.get(), r.get()):
        assert torch.equal(a, b)
    assert (r.ptr, r.filled) == (q.ptr, q.filled) == (2, 4)
    # The state is a copy: changing the queue afterwards leaves a saved state alone.
    state = q.state_dict()
    q.enqueue(torch.randn(1, 2), torch.tensor([7]))
    assert not torch.equal(state["labels"], q.labels)
    with pytest.raises(ValueError, match="same queue_size"):
        LabelQueue(8, 2).load_state_dict(state)


# ---------------------------------------------------------------------------------------------
# MomentumEncoder
# ---------------------------------------------------------------------------------------------


def _tiny_net() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3)).double()


def test_ema_update_is_exact_and_buffers_are_copied():
    torch.manual_seed(0)
    query = _tiny_net()
    m = 0.75
    key = MomentumEncoder(query, m)
    assert all(not p.requires_grad for p in key.parameters())
    k0 = {n: p.detach().clone() for n, p in key.module.named_parameters()}
    with torch.no_grad():
        for p in query.parameters():
            p.add_(torch.randn_like(p))
    query.train()
    query(torch.randn(8, 4, dtype=torch.float64))  # moves the BatchNorm running statistics
    key.update(query)
    for name, p in key.module.named_parameters():
        q = dict(query.named_parameters())[name].detach()
        expected = m * k0[name] + (1 - m) * q  # the hand formula, elementwise
        assert torch.equal(p, expected), name
        assert not torch.equal(p, q)
    for name, buf in query.named_buffers():
        assert torch.equal(dict(key.module.named_buffers())[name], buf), name


def test_ema_with_zero_momentum_copies_the_query_model():
    torch.manual_seed(1)
    query = _tiny_net()
    key = MomentumEncoder(query, 0.0)
    with torch.no_grad():
        for p in query.parameters():
            p.mul_(3.0)
    key.update(query)
    for (_, a), (_, b) in zip(key.module.named_parameters(), query.named_parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("momentum", [-0.1, 1.0, 1.5, True, "0.9"])
def test_momentum_outside_unit_interval_is_refused(momentum):
    with pytest.raises(ValueError, match=r"momentum must be a number in \[0, 1\)"):
        MomentumEncoder(_tiny_net(), momentum)


def test_ema_refuses_another_architecture():
    key = MomentumEncoder(_tiny_net(), 0.9)
    with pytest.raises(ValueError, match="architecture"):
        key.update(nn.Linear(4, 3).double())


# ---------------------------------------------------------------------------------------------
# MomentumQueue: the loss with a queue
# ---------------------------------------------------------------------------------------------


class _Embed(nn.Module):
    """A linear embedding of flattened 'images', L2-normalised (like SupConModel's forward)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(12, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.lin(x.flatten(1)), dim=1)


def _filled_queue(size: int, steps: int, batch: int, supervised: bool) -> tuple[MomentumQueue, nn.Module]:
    torch.manual_seed(2)
    model = _Embed().double()
    mq = MomentumQueue(model, size, 0.5, 5, batch_size=batch, dtype=torch.float64)
    for _ in range(steps):
        images = torch.randn(batch, 3, 2, 2, dtype=torch.float64)
        labels = torch.randint(0, 3, (batch,))
        mq.contrast_inputs(mq.encode(images), labels if supervised else None)
        mq.enqueue_last()
        with torch.no_grad():  # stands in for an optimizer step
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
        mq.update_key_encoder()
    return mq, model


@pytest.mark.parametrize("chunk_size", [None, 4])
def test_supcon_loss_with_the_queue_is_the_loss_on_the_concatenated_set(chunk_size):
    mq, model = _filled_queue(size=10, steps=4, batch=3, supervised=True)  # 12 keys through 10 slots
    q_feats, q_labels = mq.queue.get()
    assert q_feats.shape == (10, 5) and (q_labels >= 0).all()
    images = torch.randn(3, 2, 3, 2, 2, dtype=torch.float64)
    labels = torch.tensor([0, 1, 1])
    features = model(images.flatten(0, 1)).view(3, 2, 5)
    keys = mq.encode(images[:, -1])
    contrast = mq.contrast_inputs(keys, labels)
    # The queue as it was before this step: the step's own keys are not in the contrast set.
    assert torch.equal(contrast["contrast_features"], q_feats)
    assert torch.equal(contrast["contrast_labels"], q_labels)
    assert not contrast["contrast_features"].requires_grad

    loss = supcon_loss(features, labels, **contrast, chunk_size=chunk_size)
    (grad,) = torch.autograd.grad(loss, list(model.parameters())[:1])
    detached = q_feats.detach().clone()
    features_ref = model(images.flatten(0, 1)).view(3, 2, 5)
    expected = reference_supcon_loss(features_ref, labels, contrast_features=detached,
                                     contrast_labels=q_labels.clone())
    (grad_ref,) = torch.autograd.grad(expected, list(model.parameters())[:1])
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-10, atol=1e-12)
    assert all(p.grad is None for p in mq.key_encoder.parameters())

    mq.enqueue_last()
    feats_after, labels_after = mq.queue.get()
    assert torch.equal(feats_after[-3:], keys) and labels_after[-3:].tolist() == [0, 1, 1]


def test_simclr_queue_rows_are_negatives():
    mq, model = _filled_queue(size=6, steps=2, batch=3, supervised=False)
    q_feats, q_labels = mq.queue.get()
    assert q_labels.tolist() == [UNLABELED] * 6
    images = torch.randn(3, 2, 3, 2, 2, dtype=torch.float64)
    features = model(images.flatten(0, 1)).view(3, 2, 5)
    contrast = mq.contrast_inputs(mq.encode(images[:, -1]), None)
    assert set(contrast) == {"contrast_features"}
    loss = supcon_loss(features, **contrast, chunk_size=None)
    expected = reference_supcon_loss(features, contrast_features=q_feats.clone())
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
    # Every queue row is a negative: the loss exceeds the batch-only loss.
    assert loss > supcon_loss(features, chunk_size=None)


def test_queue_extends_an_existing_contrast_set():
    mq, _ = _filled_queue(size=6, steps=2, batch=3, supervised=True)
    q_feats, q_labels = mq.queue.get()
    other = {"contrast_features": torch.randn(4, 5, dtype=torch.float64),
             "contrast_labels": torch.tensor([5, 6, 7, 8])}
    out = mq.contrast_inputs(torch.randn(3, 5, dtype=torch.float64), torch.tensor([0, 1, 2]), other)
    assert torch.equal(out["contrast_features"], torch.cat([other["contrast_features"], q_feats]))
    assert out["contrast_labels"].tolist() == [5, 6, 7, 8] + q_labels.tolist()
    assert other["contrast_features"].shape == (4, 5)  # the caller's dict is left alone


def test_momentum_queue_errors():
    with pytest.raises(ValueError, match=r"queue size \(8\) must be at least the batch size \(16\)"):
        MomentumQueue(_Embed(), 8, 0.9, 5, batch_size=16)
    with pytest.raises(ValueError, match="momentum"):
        MomentumQueue(_Embed(), 8, 1.0, 5)
    mq = MomentumQueue(_Embed(), 8, 0.9, 5)
    with pytest.raises(RuntimeError, match="before contrast_inputs"):
        mq.enqueue_last()
    with pytest.raises(ValueError, match="without --queue-size"):
        mq.load_state_dict({})


def test_momentum_queue_state_round_trip():
    mq, model = _filled_queue(size=10, steps=3, batch=4, supervised=True)
    fresh = MomentumQueue(model, 10, 0.5, 5, dtype=torch.float64)
    fresh.load_state_dict(mq.state_dict())
    for a, b in zip(mq.queue.get(), fresh.queue.get()):
        assert torch.equal(a, b)
    for (na, a), (nb, b) in zip(mq.key_encoder.module.state_dict().items(),
                                fresh.key_encoder.module.state_dict().items()):
        assert na == nb and torch.equal(a, b)
    # The key encoder is its own copy: it differs from the query model after the EMA steps.
    assert not torch.equal(fresh.key_encoder.module.lin.weight, model.lin.weight)


# ---------------------------------------------------------------------------------------------
# Engine: pretraining with --queue-size resumes exactly
# ---------------------------------------------------------------------------------------------


class _Crash(Exception):
    pass


def test_pretrain_with_queue_resumes_to_identical_weights_and_queue(tmp_path, monkeypatch, tiny_config):
    cfg = tiny_config(epochs=2, queue_size=40, key_momentum=0.9)
    engine.pretrain(cfg, tmp_path / "full")

    real_save = loop.save_checkpoint

    def save_then_crash(state, path):
        real_save(state, path)
        raise _Crash

    with monkeypatch.context() as patch:
        patch.setattr(loop, "save_checkpoint", save_then_crash)
        with pytest.raises(_Crash):
            engine.pretrain(cfg, tmp_path / "resumed")
    engine.pretrain(cfg, tmp_path / "resumed", resume=True)

    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for key, value in a["model"]["model"].items():
        assert torch.equal(value, b["model"]["model"][key]), key
    for key, value in a["extra"]["key_encoder"].items():
        assert torch.equal(value, b["extra"]["key_encoder"][key]), f"key encoder {key}"
    qa, qb = a["extra"]["queue"], b["extra"]["queue"]
    assert torch.equal(qa["features"], qb["features"]) and torch.equal(qa["labels"], qb["labels"])
    assert (qa["ptr"], qa["filled"]) == (qb["ptr"], qb["filled"])
    # 2 epochs x 4 steps x 16 keys = 128 keys went through 40 slots; all labelled.
    assert qa["filled"] == 40 and qa["ptr"] == 128 % 40 and (qa["labels"] >= 0).all()
    # The key encoder is an EMA, not a copy, of the trained model.
    assert not torch.equal(a["extra"]["key_encoder"]["head.net.0.weight"], a["model"]["model"]["head.net.0.weight"])
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]
