"""How a CPU run computes: channels_last models and image batches, and malloc keeping freed memory."""

from __future__ import annotations

import torch
from torch import nn

from supcon.train.runtime import Runtime, prepare_model


def test_cpu_run_with_channels_last_formats_models_and_images() -> None:
    rt = Runtime(device=torch.device("cpu"), amp_dtype=None, channels_last=True)
    assert rt.uses_channels_last
    images = torch.rand(2, 3, 5, 5)
    formatted = rt.format(images)
    assert formatted.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(formatted, images)
    features = torch.rand(2, 7)
    assert rt.format(features) is features  # only 4-D image batches change layout
    model = prepare_model(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), rt)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(model(formatted), model(images), atol=1e-6, rtol=1e-5)


def test_channels_last_off_keeps_the_default_layout() -> None:
    rt = Runtime(device=torch.device("cpu"), amp_dtype=None, channels_last=False)
    images = torch.rand(2, 3, 5, 5)
    assert not rt.uses_channels_last and rt.format(images) is images
    conv = nn.Conv2d(3, 4, 3)
    assert prepare_model(conv, rt).weight.is_contiguous()


def test_keep_freed_memory_applies_on_glibc_and_training_still_runs() -> None:
    import platform

    from supcon.train.runtime import keep_freed_memory

    applied = keep_freed_memory()
    assert applied == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
    big = torch.ones(16 * 2**20)  # 64 MiB, above glibc's default mmap threshold
    assert float(big.sum()) == 16 * 2**20
