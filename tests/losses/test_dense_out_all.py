"""Tests for supcon.losses.dense_out_all: the saved-matrix route of L_out with the "all" denominator.

Its two ways to take the exponentials (unshifted, symmetric E; or shifted by the row max, forced
here by a zero limit), with and without the normalisation inside, against the float64 loop
reference and gradcheck; a zero row against the tiled path; and which path "auto" picks.
"""

from __future__ import annotations

import pytest
import torch

from supcon import supcon_loss
from supcon.losses import AUTO_CHUNK, AUTO_DENSE_MAX_BYTES, AUTO_TILED_THRESHOLD
from supcon.losses import dense_out_all
from supcon.losses.supcon import _choose_path
from loss_cases import CASES, CONTRAST_MODES, check_against_reference, make_case, randn


@pytest.fixture(params=["unshifted", "shifted"])
def shift_mode(request, monkeypatch) -> str:
    """Runs a test once as it comes (CPU: unshifted) and once with the row-max shift forced."""
    if request.param == "shifted":
        monkeypatch.setattr(dense_out_all, "_NO_SHIFT_LIMIT", {})
    return request.param


@pytest.mark.parametrize("contrast_mode", CONTRAST_MODES)
@pytest.mark.parametrize("case_name", CASES)
def test_matches_reference_both_ways(case_name: str, contrast_mode: str, shift_mode: str) -> None:
    check_against_reference(make_case(case_name), dict(contrast_mode=contrast_mode), paths=[None])


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_reductions_match_reference(reduction: str, shift_mode: str) -> None:
    for case_name in ["labels_2d_singletons", "extra_labels", "mask_zero_diagonal"]:
        check_against_reference(make_case(case_name), dict(reduction=reduction), paths=[None])


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("extra", [False, True])
@pytest.mark.parametrize("contrast_mode", CONTRAST_MODES)
def test_gradcheck(contrast_mode: str, extra: bool, normalize: bool, shift_mode: str) -> None:
    """Symmetric E (every row anchors, no extra rows, unshifted) and the general products."""
    features = randn(4, 2, 3, seed=71).requires_grad_(True)
    contrast = randn(3, 3, seed=72).requires_grad_(True)
    labels = torch.tensor([0, 1, 0, 0])

    def loss(f: torch.Tensor, cf: torch.Tensor) -> torch.Tensor:
        inputs = dict(contrast_features=cf, contrast_labels=torch.tensor([1, 0, 2])) if extra else {}
        return supcon_loss(f, labels, temperature=0.5, chunk_size=None, normalize=normalize,
                           contrast_mode=contrast_mode, reduction="none", **inputs).sum() + (
            0.0 * cf.sum())

    assert torch.autograd.gradcheck(loss, (features, contrast))


def test_zero_row_matches_tiled_path() -> None:
    """A zero feature row (its norm under F.normalize's eps): same value and gradient as the
    tiled path, which normalises through autograd."""
    features = randn(5, 2, 4, seed=73)
    features[2, 1] = 0.0
    labels = torch.tensor([0, 1, 0, 1, 2])
    results = []
    for chunk_size in [None, 3]:
        f = features.clone().requires_grad_(True)
        loss = supcon_loss(f, labels, chunk_size=chunk_size)
        loss.backward()
        results.append((loss.detach(), f.grad))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-10, atol=1e-12)


def test_no_other_row_gives_zero_loss_and_no_nan() -> None:
    """One row only (check_inputs=False skips the no-positive error): 0, finite gradient."""
    features = randn(1, 4, seed=74).requires_grad_(True)
    loss = supcon_loss(features, torch.tensor([0]), chunk_size=None, check_inputs=False)
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert torch.isfinite(features.grad).all()


def test_float32_large_logits_take_the_shift() -> None:
    """temperature=0.01 puts |s| up to 100: float32 takes the row-max shift, stays finite and
    matches float64."""
    features = randn(6, 2, 8, seed=75)
    labels = torch.tensor([0, 1, 0, 1, 2, 2])
    f32 = features.float().requires_grad_(True)
    loss32 = supcon_loss(f32, labels, temperature=0.01, chunk_size=None)
    loss32.backward()
    f64 = features.clone().requires_grad_(True)
    loss64 = supcon_loss(f64, labels, temperature=0.01, chunk_size=None)
    loss64.backward()
    torch.testing.assert_close(loss32.double(), loss64, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(f32.grad.double(), f64.grad, rtol=1e-4, atol=1e-5)


def test_auto_path_follows_the_constants() -> None:
    """int -> tiled with that block; None -> dense; "auto" -> by the per-device constants."""
    rows = torch.empty(64, 1)
    assert _choose_path(7, rows, 64, True) == ("tiled", 7)
    assert _choose_path(None, rows, 64, True) == ("dense_out_all", 0)
    assert _choose_path(None, rows, 64, False) == ("dense", 0)
    assert _choose_path("auto", rows, 64, True) == ("dense_out_all", 0)
    assert _choose_path("auto", rows, 64, False) == ("dense", 0)
    side = int((AUTO_DENSE_MAX_BYTES["cpu"] // 4) ** 0.5)
    assert side >= 16384  # every size the benchmark measures stays on the dense route
    big = torch.empty(side + 1, 1)
    assert _choose_path("auto", big, side + 1, True) == ("tiled", AUTO_CHUNK["cpu"])
    assert _choose_path("auto", big, (side + 1) // 4, True)[0] == "dense_out_all"
    wide = torch.empty(AUTO_TILED_THRESHOLD["cpu"], 1)
    assert _choose_path("auto", wide, 1, False) == ("tiled", AUTO_CHUNK["cpu"])


def test_auto_path_off_cpu_keeps_the_cuda_rule() -> None:
    """Any other device ("meta" stands in for CUDA here): dense below 8192 rows, tiled from it."""
    below, at = torch.empty(8191, 1, device="meta"), torch.empty(8192, 1, device="meta")
    assert _choose_path("auto", below, 8191, True) == ("dense_out_all", 0)
    assert _choose_path("auto", at, 8192, True) == ("tiled", AUTO_CHUNK["cuda"])
    assert _choose_path("auto", at, 8192, False) == ("tiled", AUTO_CHUNK["cuda"])
    assert _choose_path("auto", below, 8191, False) == ("dense", 0)
