"""This project's path of benchmarks/throughput.py: the step :func:`supcon.train.methods.pretrain` runs.

Built from the engine's own pieces (``setup_runtime``, ``build_supcon_model``, ``prepare_model`` /
``wrap`` for channels_last and ``--compile``, ``build_optimizer`` with fused SGD on CUDA, and the
very ``contrastive_step`` of pretraining: views by ``make_views``, normalisation, the memory
layout, encoder + head under the run's autocast, ``SupConLoss``). The uint8 dataset is held on the
device (``place``); each step indexes a batch there and never reads a value back to the host.

Variants replay the CPU history of this step so that one run shows what each change bought
(:data:`VARIANTS`): ``kornia`` is the step before (kornia's SimAugment, contiguous tensors,
glibc's malloc defaults), ``batched-aug`` swaps in :mod:`supcon.simaugment`'s batched ops,
``channels-last`` adds channels_last on the CPU, ``project`` lets malloc keep freed memory
(:func:`supcon.train.runtime.keep_freed_memory`; the defaults: this is "ours"), ``bf16`` adds
``--amp bf16`` (CPU autocast, opt-in).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from throughput_recipe import (CHANNELS, IMAGE_SIZE, LR, MEAN, MOMENTUM, STD, TEMPERATURE, VIEWS, WEIGHT_DECAY,
                               PhaseTimer, TimedModule)

from supcon.augment import AugmentationPipeline, Normalize, build_augmentation
from supcon.config import Config
from supcon.train.methods.pretrain import EncoderAndHead, build_supcon_model, contrastive_step
from supcon.train.optim import build_optimizer, learning_rate, set_learning_rate
from supcon.train import runtime as runtime_module
from supcon.train.runtime import Runtime, place, prepare_model, setup_runtime, wrap

__all__ = ["VARIANTS", "Variant", "ours_setup", "kornia_simaugment"]


@dataclass(frozen=True)
class Variant:
    """One configuration of the project's step."""

    label: str
    augment: str  # "project" (supcon.augment) | "kornia" (the pipeline before supcon.simaugment)
    channels_last: bool
    amp: str  # Config.amp: "auto" (bf16 on CUDA, fp32 on CPU) | "bf16" | "off"
    keep_freed_memory: bool  # setup_runtime's malloc setting on the CPU (False: glibc's defaults)


#: Name -> variant, in the order the changes were made (``project`` is the project's defaults).
VARIANTS: dict[str, Variant] = {
    "kornia": Variant("before", "kornia", False, "auto", False),
    "batched-aug": Variant("+ batched SimAugment", "project", False, "auto", False),
    "channels-last": Variant("+ channels_last", "project", True, "auto", False),
    "project": Variant("ours (defaults)", "project", True, "auto", True),
    "bf16": Variant("+ --amp bf16 (opt-in)", "project", True, "bf16", True),
}


def kornia_simaugment(image_size: int, crop_scale: tuple[float, float] = (0.2, 1.0)) -> AugmentationPipeline:
    """The ``"sim"`` pipeline as it was before :mod:`supcon.simaugment` (kornia 0.9 modules)."""
    import kornia.augmentation as K

    steps = nn.Sequential(
        K.RandomResizedCrop((image_size, image_size), scale=crop_scale, cropping_mode="resample"),
        K.RandomHorizontalFlip(p=0.5),
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),
        K.RandomGrayscale(p=0.2),
    )
    return AugmentationPipeline("sim", steps, image_size, CHANNELS)


@dataclass
class _TimedRuntime(Runtime):
    """The run's runtime, its input layout change counted as augmentation time."""

    timer: PhaseTimer | None = None

    def format(self, x: Tensor) -> Tensor:
        t0 = self.timer.now()
        out = super().format(x)
        self.timer.add("augmentation", self.timer.now() - t0)
        return out


def ours_setup(arch: str, width: int, batch: int, device: str, compile_model: bool, images: Tensor,
               labels: Tensor, variant: Variant, timer: PhaseTimer
               ) -> tuple[Callable[[int], Tensor], nn.Module, Runtime, dict[str, Any]]:
    """The engine's pretraining step (supcon, no probe, no queue, one process) as ``step(i)``.

    Mirrors :func:`supcon.train.methods.pretrain` and the inner loop of ``fit``: learning rate set,
    batch indexed on the device, views augmented, forward under autocast, loss, zero_grad, backward,
    optimizer step, loss accumulated on the device. ``timer`` records the phases (augmentation:
    views, normalisation and layout; forward: encoder + head; loss: the rest of the contrastive
    step; backward with zero_grad; optimizer; the learning-rate update and indexing fall in other).

    Returns:
        The step, the plain model (for the FLOP count), the runtime and the row's description.
    """
    cfg = Config(arch=arch, width=width, batch_size=batch, device=device, compile=compile_model,
                 lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, temperature=TEMPERATURE,
                 views=VIEWS, epochs=1, progress=False, plots=False, channels_last=variant.channels_last,
                 amp=variant.amp)
    original = runtime_module.keep_freed_memory
    if not variant.keep_freed_memory:  # the glibc defaults, as before setup_runtime changed them
        runtime_module.keep_freed_memory = lambda: False
    try:
        base = setup_runtime(cfg)
    finally:
        runtime_module.keep_freed_memory = original
    rt = _TimedRuntime(**{f.name: getattr(base, f.name) for f in fields(Runtime)}, timer=timer)
    model = prepare_model(build_supcon_model(cfg, CHANNELS), rt)
    net = TimedModule(wrap(EncoderAndHead(model), cfg, rt), timer, "forward")
    fused = rt.device.type == "cuda" and cfg.optimizer == "sgd"
    optimizer = build_optimizer(model.parameters(), cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay,
                                fused=fused)
    if variant.augment == "kornia":
        augment = kornia_simaugment(IMAGE_SIZE, (cfg.crop_min, 1.0))
    else:
        augment = build_augmentation(cfg.augment, IMAGE_SIZE, CHANNELS, crop_scale=(cfg.crop_min, 1.0),
                                     blur=cfg.blur, flip=cfg.flip)
    augment = TimedModule(augment.to(rt.device), timer, "augmentation")
    normalize = TimedModule(Normalize(MEAN, STD).to(rt.device), timer, "augmentation")
    # The very step pretrain() runs (views, encoder + head under autocast, the loss), no probe or queue.
    batch_loss = contrastive_step(cfg, rt, net, augment, normalize, queue=None, probe_net=None)  # type: ignore[arg-type]
    train_images = place(images, rt.device)
    train_labels = labels.to(rt.device)
    n = train_images.shape[0]
    # fit() copies each epoch's permutation to the device once; so does this.
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    image_order, label_order = order.to(train_images.device), order.to(train_labels.device)
    loss_sum = torch.zeros((), device=rt.device)
    total_steps = max(1, n // batch)
    model.train()

    def step(i: int) -> Tensor:
        nonlocal loss_sum
        t0 = timer.now()
        set_learning_rate(optimizer, learning_rate(i % total_steps, total_steps, cfg.lr, 0, cfg.schedule))
        start = (i * batch) % (n - batch + 1)
        x = train_images[image_order[start:start + batch]].to(rt.device, non_blocking=True)
        y = train_labels[label_order[start:start + batch]]
        inner = timer.seconds["augmentation"] + timer.seconds["forward"]
        t1 = timer.now()
        loss, _ = batch_loss(x, y)
        t2 = timer.now()
        timer.add("loss", (t2 - t1) - (timer.seconds["augmentation"] + timer.seconds["forward"] - inner))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t3 = timer.now()
        optimizer.step()
        t4 = timer.now()
        loss_sum += loss.detach()
        for phase, seconds in (("backward", t3 - t2), ("optimizer", t4 - t3), ("step", timer.now() - t0)):
            timer.add(phase, seconds)
        timer.steps += timer.recording
        return loss

    info = {
        "variant_label": variant.label,
        "amp": str(rt.amp_dtype).replace("torch.", "") if rt.amp_dtype else "fp32",
        "compile": compile_model,
        "channels_last": rt.uses_channels_last,
        "fused_sgd": fused,
        "keeps_freed_memory": variant.keep_freed_memory and rt.device.type == "cpu",
        "augment": f"{'kornia' if variant.augment == 'kornia' else 'batched'} SimAugment on {rt.device.type}",
    }
    return step, model, rt, info
