"""Device names: one rule for every command, and clear errors for names this machine cannot use."""

from __future__ import annotations

import pytest
import torch

from supcon.config import ConfigError
from supcon.devices import autocast, memory_format, resolve_device


def test_cpu_and_auto_without_a_gpu():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_a_gpu_is_a_config_error(name):
    with pytest.raises(ConfigError, match="CUDA is not available.*--device cpu"):
        resolve_device(name)


@pytest.mark.parametrize("name", ["gpu", "cpu:x", "", "tpu0"])
def test_unknown_names_are_config_errors(name):
    with pytest.raises(ConfigError, match="not a device name"):
        resolve_device(name)


def test_the_meta_device_cannot_train():
    with pytest.raises(ConfigError, match="cannot train or evaluate"):
        resolve_device("meta")


def test_autocast_off_without_a_dtype_and_layout_only_on_cuda():
    x = torch.ones(2, 3)
    with autocast(torch.device("cpu"), None):
        assert (x @ x.T).dtype == torch.float32
    with autocast(torch.device("cpu"), torch.bfloat16):
        assert (x @ x.T).dtype == torch.bfloat16
    images = torch.zeros(2, 3, 4, 4)
    assert memory_format(images, torch.device("cpu"), True) is images
