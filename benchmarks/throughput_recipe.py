"""What both paths of benchmarks/throughput.py share: the recipe, the synthetic data, FLOPs, step timers.

Imported by ``throughput.py``, ``throughput_ours.py`` and ``throughput_reference.py`` (this folder is
put on ``sys.path`` by ``throughput.py``); it prints nothing and asserts nothing.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch import Tensor, nn

SRC = Path(__file__).resolve().parents[1] / "src"
if SRC.is_dir() and str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

IMAGE_SIZE = 32
CHANNELS = 3
NUM_CLASSES = 100
VIEWS = 2
#: CIFAR-100 training-set statistics, used by both paths.
MEAN = (0.5071, 0.4865, 0.4409)
STD = (0.2673, 0.2564, 0.2762)
LR = 0.5
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
TEMPERATURE = 0.1
#: The phases of a step in the time split, in table order (``data``: waiting for the reference's
#: DataLoader workers; ``other``: the rest of the step, e.g. indexing the batch).
PHASES = ("augmentation", "data", "forward", "loss", "backward", "optimizer", "other")
#: Dense bf16 tensor-core peaks (FLOP/s), matched against torch.cuda.get_device_name in order.
PEAK_BF16: tuple[tuple[tuple[str, ...], float], ...] = (
    (("H100", "PCIE"), 756e12),
    (("H100", "NVL"), 835e12),
    (("H100",), 989e12),  # SXM5 ("NVIDIA H100 80GB HBM3")
    (("H200",), 989e12),  # also GH200
    (("H800",), 989e12),
    (("A100",), 312e12),
    (("A800",), 312e12),
)


def synthetic_dataset(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """``n`` random uint8 images ``(n, 3, 32, 32)`` and labels ``(n,)`` in ``[0, 100)``."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, CHANNELS, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=gen)
    return images, labels


def forward_flops_per_image(model: nn.Module, device: torch.device, images: int = 8) -> float:
    """Forward FLOPs of ``model`` per image (``VIEWS`` views), counted on ``images`` images.

    Convolutions and linear layers are per-sample, so the count scales exactly with the batch; a
    small batch keeps the count cheap. Runs in eval mode (batch-norm statistics untouched).
    """
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    x = torch.zeros(images * VIEWS, CHANNELS, IMAGE_SIZE, IMAGE_SIZE, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() / images


def peak_flops(device: torch.device, override_tflops: float | None) -> tuple[float | None, str]:
    """The dense bf16 peak in FLOP/s and where it came from (None where unknown)."""
    if override_tflops is not None:
        return override_tflops * 1e12, "--peak-tflops"
    if device.type != "cuda":
        return None, "unknown (not a GPU; pass --peak-tflops)"
    name = torch.cuda.get_device_name(device).upper()
    for keys, value in PEAK_BF16:
        if all(key in name for key in keys):
            return value, f"table ({' '.join(keys)})"
    return None, "unknown GPU (pass --peak-tflops)"


class PhaseTimer:
    """Wall-clock seconds per phase of the steps it watches.

    On CUDA the device is synchronised at every phase boundary when ``sync`` is set (the split
    runs then happen in separate, untimed steps); on the CPU work is synchronous and timing is free,
    so the timed steps themselves are split.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.sync = False
        self.seconds: dict[str, float] = defaultdict(float)
        self.steps = 0
        self.recording = False

    def now(self) -> float:
        if self.sync and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def add(self, phase: str, seconds: float) -> None:
        if self.recording:
            self.seconds[phase] += seconds

    def start(self, sync: bool) -> None:
        """Forget what was recorded and record from now on."""
        self.seconds.clear()
        self.steps, self.sync, self.recording = 0, sync, True

    def stop(self) -> dict[str, float]:
        """Stops recording; milliseconds per step and phase, ``step`` the whole step."""
        self.recording, self.sync = False, False
        steps = max(self.steps, 1)
        out = {phase: 1000 * self.seconds.get(phase, 0.0) / steps for phase in PHASES}
        out["step"] = 1000 * self.seconds.get("step", 0.0) / steps
        return out


class TimedModule(nn.Module):
    """Runs ``inner`` and adds its wall-clock time to ``phase`` of ``timer``."""

    def __init__(self, inner: nn.Module, timer: PhaseTimer, phase: str) -> None:
        super().__init__()
        self.inner, self.timer, self.phase = inner, timer, phase

    def forward(self, *args, **kwargs):
        t0 = self.timer.now()
        out = self.inner(*args, **kwargs)
        self.timer.add(self.phase, self.timer.now() - t0)
        return out
