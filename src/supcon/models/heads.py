"""Projection heads and the linear classifier that sit on top of an encoder.

Khosla et al. (2020, Sec. 3.1) follow the encoder with a projection network ``Proj(.)``: an MLP with
one hidden layer of the encoder's size and an output of 128, whose output is normalised to the unit
hypersphere before the loss. The projection is discarded after training; a linear classifier on the
frozen encoder representation measures its quality.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from supcon.models.init import check_positive_int

HEAD_KINDS: tuple[str, ...] = ("mlp", "linear")


class ProjectionHead(nn.Module):
    """Projection network mapping representations onto the unit hypersphere.

    Args:
        in_dim: size of the encoder representation.
        kind: ``"mlp"`` (Linear(in_dim, hidden_dim) -> ReLU -> Linear(hidden_dim, out_dim), the paper's
            head) or ``"linear"`` (a single Linear(in_dim, out_dim)).
        out_dim: size of the projection (128 in the paper).
        hidden_dim: hidden size of the MLP; defaults to ``in_dim``. Ignored for ``"linear"``.

    Shapes:
        ``forward``: ``(B, in_dim) -> (B, out_dim)``, every row of unit L2 norm.

    Raises:
        ValueError: unknown ``kind`` or a size that is not a positive int.
    """

    def __init__(self, in_dim: int, kind: str = "mlp", out_dim: int = 128, hidden_dim: int | None = None) -> None:
        super().__init__()
        check_positive_int("in_dim", in_dim)
        check_positive_int("out_dim", out_dim)
        if kind not in HEAD_KINDS:
            raise ValueError(f"kind must be one of {HEAD_KINDS}, got {kind!r}")
        if hidden_dim is None:
            hidden_dim = in_dim
        check_positive_int("hidden_dim", hidden_dim)
        self.kind = kind
        self.in_dim = in_dim
        self.out_dim = out_dim
        if kind == "mlp":
            self.hidden_dim: int | None = hidden_dim
            self.net: nn.Module = nn.Sequential(
                nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)
            )
        else:
            self.hidden_dim = None
            self.net = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project and L2-normalise.

        Args:
            x: ``(B, in_dim)`` representations.

        Returns:
            ``(B, out_dim)`` unit-norm projections.
        """
        return F.normalize(self.net(x), dim=1)


class LinearClassifier(nn.Linear):
    """A single linear layer producing class logits (the linear-evaluation protocol).

    Args:
        in_dim: size of the input representation.
        num_classes: number of classes.

    Shapes:
        ``forward``: ``(B, in_dim) -> (B, num_classes)`` logits.

    Raises:
        ValueError: ``in_dim`` or ``num_classes`` not a positive int.
    """

    def __init__(self, in_dim: int, num_classes: int) -> None:
        check_positive_int("in_dim", in_dim)
        check_positive_int("num_classes", num_classes)
        super().__init__(in_dim, num_classes)
        self.in_dim = in_dim
        self.num_classes = num_classes



class ProbeClassifier(nn.Module):
    """The linear probe: features standardised by a BatchNorm without affine parameters, then linear.

    Frozen features can have any scale (an under-trained ResNet's run to the hundreds); standardising
    them, as the MAE and solo-learn probes do, makes one learning rate fit every encoder, so a weak
    encoder gives a low accuracy instead of an exploding loss. In eval mode the running statistics of
    the training features are used. The composition stays linear in the features.

    Shapes:
        ``forward``: ``(B, in_dim) -> (B, num_classes)`` logits.
    """

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(in_dim, affine=False)
        self.linear = LinearClassifier(in_dim, num_classes)
        self.in_dim = in_dim
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(x))
