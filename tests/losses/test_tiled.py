"""Tests for supcon.losses.tiled: the block sweeps and the hand-written backward.

Block sizes that divide the rows or not, gradcheck of the custom backward (next to the dense
path's autograd), float32 agreement with the dense path, and logits far apart in float32.
"""

from __future__ import annotations

import pytest
import torch

from supcon import supcon_loss
from loss_cases import (DENOMINATORS, VARIANTS, check_against_reference, make_case, randn,
                        weighted_mask)


@pytest.mark.parametrize("chunk_size", [1, 2, 4, 7, 12, 13, 100])
def test_tiled_block_sizes(chunk_size: int) -> None:
    """Block sizes that divide the 12 + 5 rows or not, one row per block, one block in all."""
    check_against_reference(make_case("extra_labels"), dict(variant="in"), paths=[chunk_size])
    check_against_reference(make_case("cap_2"), dict(denominator="one_positive"),
                            paths=[chunk_size])


# ---------------------------------------------------------------------------------------------
# gradcheck on the dense and the tiled path
# ---------------------------------------------------------------------------------------------


def option_id(options: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in options.items()) or "default"


GRADCHECK_OPTIONS = [
    dict(),
    dict(variant="in"),
    dict(denominator="one_positive"),
    dict(denominator="one_positive", variant="in", contrast_mode="one"),
    dict(denominator="only_negatives", base_temperature=0.07),
    dict(positives_cap=2, variant="in"),
    dict(mask="weighted"),
    dict(mask="weighted", variant="in", denominator="one_positive"),
    dict(simclr=True),
]


@pytest.mark.parametrize("chunk_size", [None, 3])
@pytest.mark.parametrize("options", GRADCHECK_OPTIONS, ids=option_id)
def test_gradcheck(options: dict, chunk_size) -> None:
    options = dict(options)
    features = randn(4, 2, 3, seed=42).requires_grad_(True)
    contrast_features = randn(3, 3, seed=43).requires_grad_(True)
    inputs: dict = {}
    if options.pop("simclr", False):
        pass
    elif options.pop("mask", None) == "weighted":
        inputs["mask"] = weighted_mask(4, seed=44)
        inputs["contrast_mask"] = torch.tensor(
            [[0.0, 1.5, 0.3], [0.0, 0.0, 0.0], [2.0, 0.0, 0.1], [0.0, 0.4, 0.0]],
            dtype=torch.float64,
        )
    else:
        inputs["labels"] = torch.tensor([0, 1, 0, 0])
        inputs["contrast_labels"] = torch.tensor([1, 0, 2])

    def loss(f: torch.Tensor, cf: torch.Tensor) -> torch.Tensor:
        return supcon_loss(f, contrast_features=cf, temperature=0.5, chunk_size=chunk_size,
                           **inputs, **options)

    assert torch.autograd.gradcheck(loss, (features, contrast_features), fast_mode=True)


@pytest.mark.parametrize("chunk_size", [None, 3])
@pytest.mark.parametrize("options", [dict(), dict(variant="in", denominator="one_positive")],
                         ids=["default", "in-one_positive"])
def test_gradcheck_full(options: dict, chunk_size) -> None:
    """Every input coordinate against finite differences (the fast mode above projects)."""
    features = randn(3, 2, 3, seed=59).requires_grad_(True)
    contrast_features = randn(2, 3, seed=60).requires_grad_(True)

    def loss(f: torch.Tensor, cf: torch.Tensor) -> torch.Tensor:
        return supcon_loss(f, torch.tensor([0, 1, 0]), contrast_features=cf,
                           contrast_labels=torch.tensor([1, 0]), temperature=0.5,
                           chunk_size=chunk_size, **options)

    assert torch.autograd.gradcheck(loss, (features, contrast_features))


# ---------------------------------------------------------------------------------------------
# Agreement with the dense path in float32
# ---------------------------------------------------------------------------------------------


FLOAT32_OPTIONS = [
    dict(),
    dict(variant="in", denominator="one_positive"),
    dict(denominator="only_negatives", contrast_mode="one"),
    dict(positives_cap=4, variant="in"),
    dict(mask=True),
    dict(simclr=True, views=3),
]


@pytest.mark.parametrize("options", FLOAT32_OPTIONS, ids=option_id)
def test_float32_dense_and_tiled_agree(options: dict) -> None:
    options = dict(options)
    batch, views, dim = 24, options.pop("views", 2), 16
    features = randn(batch, views, dim, seed=49).float()
    contrast_features = randn(10, dim, seed=50).float()
    inputs: dict = {}
    if options.pop("simclr", False):
        pass
    elif options.pop("mask", False):
        inputs["mask"] = weighted_mask(batch, seed=51).float()
    else:
        inputs["labels"] = torch.arange(batch) % 5
        inputs["contrast_labels"] = torch.arange(10) % 6

    results = []
    for chunk_size in [None, 7, 16]:
        f = features.clone().requires_grad_(True)
        cf = contrast_features.clone().requires_grad_(True)
        loss = supcon_loss(f, contrast_features=cf, chunk_size=chunk_size, **inputs, **options)
        assert loss.dtype == torch.float32
        loss.backward()
        results.append((loss.detach(), f.grad, cf.grad))
    dense = results[0]
    for tiled in results[1:]:
        torch.testing.assert_close(tiled[0], dense[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(tiled[1], dense[1], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(tiled[2], dense[2], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("denominator", DENOMINATORS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_far_apart_logits_stay_finite_on_every_path(variant: str, denominator: str) -> None:
    """temperature=0.01 puts logits 100s apart: float32 must not under/overflow, on any path."""
    case = make_case("labels_v2")
    results = []
    for chunk_size in [None, 3]:
        features = case.features.float().requires_grad_(True)
        loss = supcon_loss(features, case.labels, temperature=0.01, chunk_size=chunk_size,
                           variant=variant, denominator=denominator)
        loss.backward()
        assert torch.isfinite(loss), f"chunk_size={chunk_size}: loss {loss}"
        assert torch.isfinite(features.grad).all(), f"chunk_size={chunk_size}"
        results.append((loss.detach(), features.grad))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-4, atol=1e-5)
