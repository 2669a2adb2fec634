"""Construction helpers shared by the encoders and heads: argument checks and weight initialisation."""

from __future__ import annotations

from torch import nn


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is a positive int (``bool`` is refused).

    Args:
        name: the argument's name, quoted in the error.
        value: the value to check.

    Returns:
        ``value`` unchanged.

    Raises:
        ValueError: ``value`` is not an int >= 1, e.g. ``width must be a positive int, got 1.5``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def init_weights(module: nn.Module) -> None:
    """Kaiming-normal (fan-out) convolutions, unit-gamma / zero-beta batch norms, in place.

    Args:
        module: every ``nn.Conv2d``, ``nn.BatchNorm2d`` and ``nn.GroupNorm`` inside it is reset.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
