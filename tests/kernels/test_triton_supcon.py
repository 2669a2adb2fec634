"""The fused Triton kernels of the tiled SupCon path (supcon.kernels.triton_supcon).

Without a GPU the kernels run under Triton's interpreter: ``triton.jit`` picks the interpreter
when a kernel is *defined* (it reads TRITON_INTERPRET then), so the ``interpreted`` fixture sets
TRITON_INTERPRET=1 and SUPCON_FORCE_TRITON=1 and reloads the kernel module, and reloads it again
afterwards without them so that later tests (and the GPU tests) see compiled kernels. Sizes stay
tiny: the interpreter runs every tile op in NumPy.

Every case compares the value and the gradients (features and contrast_features) of
``supcon_loss(..., chunk_size=16)`` through the kernel with the dense path (``chunk_size=None``),
with a per-anchor weighting of ``reduction="none"`` so that each anchor's upstream gradient differs.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from supcon.losses import PositiveSpec, supcon_loss
from supcon.losses.tiled import _TiledSupCon

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="Triton is not installed"
)

# Tiles of 16 x 16 make the small cases below span several row and column blocks, ragged ones too.
SMALL_TILES = dict(block_rows=16, block_cols=16, num_warps=4, num_stages=1)


def _kernel_module():
    return importlib.import_module("supcon.kernels.triton_supcon")


#: True inside the fresh interpreter process that ``test_interpreter_suite_in_fresh_process``
#: starts. Triton builds its own ``triton.language`` helpers as compiled or interpreted functions
#: when it is first imported, so the interpreter cannot be switched on later in a process where
#: any earlier test imported Triton: the interpreted tests run in a child process instead.
IN_INTERPRETER = os.environ.get("TRITON_INTERPRET") == "1" and os.environ.get("SUPCON_FORCE_TRITON") == "1"


@pytest.fixture
def interpreted(monkeypatch):
    """The kernel module under Triton's interpreter (only in the child process)."""
    if not IN_INTERPRETER:
        pytest.skip("runs in a fresh process under TRITON_INTERPRET=1 (see the test below)")
    monkeypatch.delenv("SUPCON_DISABLE_TRITON", raising=False)
    module = _kernel_module()
    assert type(module._supcon_fwd_kernel).__name__ == "InterpretedFunction"
    return module


@pytest.mark.skipif(IN_INTERPRETER, reason="this is the parent of the interpreted run")
def test_interpreter_suite_in_fresh_process():
    """Runs this file's kernel tests under Triton's interpreter in a new Python process."""
    import subprocess
    import sys

    env = dict(os.environ, TRITON_INTERPRET="1", SUPCON_FORCE_TRITON="1")
    env.pop("SUPCON_DISABLE_TRITON", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout.splitlines()[-1]


@pytest.fixture
def kernel(interpreted, monkeypatch):
    """The interpreted module (``.module``) with small tiles, and the variant of every
    ``row_losses`` call (``.calls``)."""
    default = interpreted._launch_configs
    monkeypatch.setattr(interpreted, "_launch_configs",
                        lambda dim: tuple(replace(c, **SMALL_TILES) for c in default(dim)))
    calls = []
    original = interpreted.row_losses

    def counting_row_losses(*args, **kwargs):
        calls.append(args[4])
        return original(*args, **kwargs)

    monkeypatch.setattr(interpreted, "row_losses", counting_row_losses)
    return SimpleNamespace(module=interpreted, calls=calls)


def _run(chunk_size, features, row_weights, contrast_features=None, **options):
    """Per-anchor losses and the gradients of ``sum(row_weights * losses)``."""
    features = features.clone().requires_grad_(True)
    extra = None
    if contrast_features is not None:
        extra = contrast_features.clone().requires_grad_(True)
    losses = supcon_loss(features, contrast_features=extra, chunk_size=chunk_size,
                         reduction="none", **options)
    (losses * row_weights).sum().backward()
    return losses.detach(), features.grad, None if extra is None else extra.grad


def _assert_matches_dense(kernel, features, contrast_features=None, reference_dtype=None,
                          **options):
    """Kernel (float32) against the dense path, run in ``reference_dtype`` (default float32)."""
    generator = torch.Generator().manual_seed(1)
    num_anchors = features.shape[0] * (
        1 if features.ndim == 2 or options.get("contrast_mode") == "one" else features.shape[1])
    row_weights = torch.rand(num_anchors, generator=generator) + 0.5
    fused = _run(16, features, row_weights, contrast_features, **options)
    assert len(kernel.calls) == 1, "the tiled path did not go through the Triton kernel"
    dtype = reference_dtype or features.dtype
    dense = _run(None, features.to(dtype), row_weights.to(dtype),
                 None if contrast_features is None else contrast_features.to(dtype), **options)
    dense = tuple(None if t is None else t.to(features.dtype) for t in dense)
    torch.testing.assert_close(fused[0], dense[0], rtol=1e-5, atol=1e-6)
    for got, want in zip(fused[1:], dense[1:]):
        if want is None:
            assert got is None
            continue
        scale = want.abs().max().item()
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6 * scale)


def _features(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _labels(n, classes, seed=0):
    return torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("variant", ["out", "in"])
def test_integer_labels_match_dense(kernel, variant):
    _assert_matches_dense(kernel, _features(20, 2, 12), labels=_labels(20, 4),
                          variant=variant, temperature=0.1)
    assert kernel.calls == [variant]


def test_simclr_matches_dense(kernel):
    _assert_matches_dense(kernel, _features(18, 2, 16, seed=2), temperature=0.5)


def test_three_views_ragged_matches_dense(kernel):
    # 13 * 3 = 39 rows: the last row and column tiles are ragged.
    _assert_matches_dense(kernel, _features(13, 3, 9, seed=3), labels=_labels(13, 3, seed=3),
                          variant="in", temperature=0.2)


def test_contrast_mode_one_matches_dense(kernel):
    _assert_matches_dense(kernel, _features(20, 2, 8, seed=4), labels=_labels(20, 5, seed=4),
                          contrast_mode="one")


def test_extra_contrast_rows_with_labels_match_dense(kernel):
    _assert_matches_dense(kernel, _features(12, 2, 12, seed=5), labels=_labels(12, 3, seed=5),
                          contrast_features=_features(17, 12, seed=6),
                          contrast_labels=_labels(17, 4, seed=6))


def test_anchors_without_positives_match_dense(kernel):
    # 2-D input, one row per sample: class 7 appears once, so its anchor has no positive.
    labels = torch.cat([_labels(36, 3, seed=7), torch.tensor([7])])
    for variant in ("out", "in"):
        kernel.calls.clear()
        # The float32 dense path's "in" gradient is NaN on such rows (log of a float32-clamped
        # zero weight), so that case is checked against the float64 dense path.
        _assert_matches_dense(kernel, _features(37, 10, seed=7), labels=labels, variant=variant,
                              reference_dtype=torch.float64 if variant == "in" else None)
    losses = supcon_loss(_features(37, 10, seed=7), labels, chunk_size=16, reduction="none")
    assert losses[-1].item() == 0.0


@pytest.mark.parametrize("dim", [16, 128, 200])
def test_gpu_launch_configs_match_dense(interpreted, monkeypatch, dim):
    """The tiles used on GPUs (64-row programs; D padded to 16, 128, 256), on ragged sizes."""
    calls = []
    original = interpreted.row_losses
    monkeypatch.setattr(interpreted, "row_losses",
                        lambda *args: calls.append(1) or original(*args))
    features, labels = _features(45, 2, dim, seed=dim), _labels(45, 6, seed=dim)
    queue, queue_labels = _features(27, dim, seed=dim + 1), _labels(27, 6, seed=dim + 1)
    row_weights = torch.rand(90, generator=torch.Generator().manual_seed(8)) + 0.5
    options = dict(labels=labels, contrast_labels=queue_labels,
                   variant="in" if dim == 200 else "out")
    fused = _run(16, features, row_weights, queue, **options)
    dense = _run(None, features, row_weights, queue, **options)
    assert calls == [1]
    torch.testing.assert_close(fused[0], dense[0], rtol=1e-5, atol=1e-6)
    for got, want in zip(fused[1:], dense[1:]):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6 * want.abs().max().item())


@pytest.mark.parametrize("variant", ["out", "in"])
def test_row_losses_matches_pytorch_tiled_path(kernel, variant):
    """Direct call: anchors at arbitrary contrast positions, int32 groups, npos checked too."""
    generator = torch.Generator().manual_seed(9)
    contrast = torch.nn.functional.normalize(torch.randn(35, 11, generator=generator), dim=1)
    groups = torch.randint(0, 4, (35,), generator=generator, dtype=torch.int32)
    anchor_index = torch.randperm(35, generator=generator)[:21]
    spec = PositiveSpec(anchor_index, groups[anchor_index], groups)
    upstream = torch.rand(21, generator=generator)

    def value_and_grads(fn):
        a = contrast[anchor_index].clone().requires_grad_(True)
        c = contrast.clone().requires_grad_(True)
        losses, npos = fn(a, c)
        (losses * upstream).sum().backward()
        return losses.detach(), npos, a.grad, c.grad

    fused = value_and_grads(lambda a, c: kernel.module.row_losses(a, c, spec, 1 / 0.3, variant))
    tiled = value_and_grads(
        lambda a, c: _TiledSupCon.apply(a, c, spec, 1 / 0.3, variant, "all", 16))
    assert fused[1].dtype == torch.long
    assert torch.equal(fused[1], tiled[1])
    for got, want in zip(fused[:1] + fused[2:], tiled[:1] + tiled[2:]):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6 * want.abs().max().item())


def test_half_precision_inputs_get_gradients_in_their_dtype(kernel):
    generator = torch.Generator().manual_seed(10)
    rows = torch.nn.functional.normalize(torch.randn(24, 16, generator=generator), dim=1)
    groups = torch.arange(24) % 6
    spec = PositiveSpec(torch.arange(24), groups, groups)
    a = rows.to(torch.bfloat16).requires_grad_(True)
    losses, _ = kernel.module.row_losses(a, a, spec, 10.0, "out")
    losses.sum().backward()
    assert losses.dtype == torch.float32 and a.grad.dtype == torch.bfloat16
    reference = _TiledSupCon.apply(a.detach().float(), a.detach().float(), spec, 10.0, "out",
                                   "all", 16)[0]
    torch.testing.assert_close(losses.detach(), reference, rtol=1e-5, atol=1e-5)


def test_supports_only_what_the_kernel_implements(interpreted):
    groups = torch.arange(8) % 4
    spec = PositiveSpec(torch.arange(8), groups, groups)
    anchors = torch.randn(8, 16)
    assert interpreted.supports(anchors, spec, "out", "all")
    assert interpreted.supports(anchors, spec, "in", "all")
    assert interpreted.supports(anchors.half(), spec, "out", "all")
    assert not interpreted.supports(anchors, spec, "out", "one_positive")
    assert not interpreted.supports(anchors, spec, "out", "only_negatives")
    assert not interpreted.supports(anchors.double(), spec, "out", "all")
    assert not interpreted.supports(torch.randn(8, interpreted.MAX_DIM + 1), spec, "out", "all")
    with_table = PositiveSpec(torch.arange(8), groups, groups, table=torch.eye(4))
    assert not interpreted.supports(anchors, with_table, "out", "all")


def test_options_outside_the_kernel_fall_back_to_pytorch(kernel):
    features, labels = _features(10, 2, 8, seed=11), _labels(10, 3, seed=11)
    supcon_loss(features, labels, chunk_size=16, denominator="only_negatives")
    supcon_loss(features, mask=torch.eye(10, dtype=torch.bool), chunk_size=16)
    assert kernel.calls == []


# ---------------------------------------------------------------------------------------------
# On a CUDA GPU: compiled kernels against the PyTorch tiled path at a realistic size
# ---------------------------------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1",
    reason="needs a CUDA GPU (compiled Triton kernels)",
)


def _gpu_value_and_grad(features, labels, monkeypatch, use_kernel, **options):
    monkeypatch.delenv("SUPCON_FORCE_TRITON", raising=False)
    if use_kernel:
        monkeypatch.delenv("SUPCON_DISABLE_TRITON", raising=False)
    else:
        monkeypatch.setenv("SUPCON_DISABLE_TRITON", "1")
    features = features.clone().requires_grad_(True)
    loss = supcon_loss(features, labels, chunk_size=1024, **options)
    loss.backward()
    return loss.detach(), features.grad


@needs_cuda
@pytest.mark.parametrize("variant", ["out", "in"])
def test_gpu_kernel_matches_pytorch_tiled_path_at_16k_rows(monkeypatch, variant):
    module = _kernel_module()
    assert type(module._supcon_fwd_kernel).__name__ == "JITFunction"
    calls = []
    original = module.row_losses
    monkeypatch.setattr(module, "row_losses", lambda *args: calls.append(1) or original(*args))
    generator = torch.Generator(device="cuda").manual_seed(0)
    features = torch.randn(8192, 2, 128, device="cuda", generator=generator)  # N = 16384, D = 128
    labels = torch.randint(0, 100, (8192,), device="cuda", generator=generator)

    fused = _gpu_value_and_grad(features, labels, monkeypatch, True, variant=variant)
    assert calls == [1], "the tiled path did not go through the Triton kernel"
    reference = _gpu_value_and_grad(features, labels, monkeypatch, False, variant=variant)
    assert calls == [1]
    torch.testing.assert_close(fused[0], reference[0], rtol=1e-4, atol=0.0)
    scale = reference[1].abs().max().item()
    torch.testing.assert_close(fused[1], reference[1], rtol=1e-3, atol=1e-4 * scale)
    # No atomics: a second run is bitwise identical.
    again = _gpu_value_and_grad(features, labels, monkeypatch, True, variant=variant)
    assert torch.equal(again[0], fused[0]) and torch.equal(again[1], fused[1])


@needs_cuda
def test_gpu_kernel_with_extra_contrast_rows_and_bf16(monkeypatch):
    """A memory-queue shape: bf16 features, 4096 anchors against 4096 + 12288 queue rows."""
    generator = torch.Generator(device="cuda").manual_seed(1)
    features = torch.randn(2048, 2, 128, device="cuda", generator=generator).bfloat16()
    labels = torch.randint(0, 100, (2048,), device="cuda", generator=generator)
    queue = torch.randn(12288, 128, device="cuda", generator=generator)
    queue_labels = torch.randint(0, 100, (12288,), device="cuda", generator=generator)
    options = dict(contrast_features=queue, contrast_labels=queue_labels)
    fused = _gpu_value_and_grad(features, labels, monkeypatch, True, **options)
    reference = _gpu_value_and_grad(features, labels, monkeypatch, False, **options)
    assert fused[1].dtype == torch.bfloat16
    torch.testing.assert_close(fused[0], reference[0], rtol=1e-4, atol=0.0)
    scale = reference[1].float().abs().max().item()
    torch.testing.assert_close(fused[1].float(), reference[1].float(), rtol=2e-2, atol=1e-2 * scale)
