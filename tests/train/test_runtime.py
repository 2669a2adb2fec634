"""The runtime: device and precision from the config, seeds per rank, the model wrappers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from supcon.config import ConfigError
from supcon.train.runtime import Runtime, ddp, place, prepare_model, seed_everything, setup_runtime, unwrap, wrap


def test_setup_runtime_on_cpu(tiny_config):
    rt = setup_runtime(tiny_config(device="cpu", amp="off"))
    assert rt.device == torch.device("cpu") and rt.amp_dtype is None and rt.is_main and not rt.distributed
    assert setup_runtime(tiny_config(device="cpu", amp="bf16")).amp_dtype == torch.bfloat16
    how = rt.inference(batch_size=7)
    assert how.device == rt.device and how.batch_size == 7


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_a_device_this_machine_lacks_is_a_config_error(tiny_config):
    with pytest.raises(ConfigError, match="CUDA is not available"):
        setup_runtime(tiny_config(device="cuda"))


def test_unknown_device_is_a_config_error(tiny_config):
    with pytest.raises(ConfigError, match="not a device name"):
        setup_runtime(tiny_config(device="gpu0"))


def test_seeds_differ_per_rank_and_repeat_per_seed():
    seed_everything(3, rank=0)
    a = torch.rand(3)
    seed_everything(3, rank=1)
    b = torch.rand(3)
    seed_everything(3, rank=0)
    assert torch.equal(a, torch.rand(3)) and not torch.equal(a, b)


def test_wrappers_are_identity_on_one_cpu_process(tiny_config):
    rt = Runtime(device=torch.device("cpu"), amp_dtype=None)
    layer = nn.Linear(2, 2)
    assert prepare_model(layer, rt) is layer
    assert wrap(layer, tiny_config(), rt) is layer and ddp(layer, rt) is layer and unwrap(layer) is layer
    images = torch.zeros(2, 1, 3, 3, dtype=torch.uint8)
    assert place(images, rt.device) is images
    assert rt.format(images) is images
