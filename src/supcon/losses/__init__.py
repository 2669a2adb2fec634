"""The supervised contrastive loss family (Khosla et al., NeurIPS 2020, arXiv 2004.11362).

One function, :func:`supcon_loss`, and its module wrapper, :class:`SupConLoss`, cover:

* ``L_out`` (the paper's eq. 2, the default) and ``L_in`` (eq. 3);
* SimCLR's NT-Xent (no labels, no mask: the positives are the other views of each image);
* integer labels, multi-hot labels and (soft) positive masks;
* the official TF code's ``denominator`` modes and ``positives_cap``;
* an extra contrast set (embeddings gathered from other GPUs, or a memory queue) that joins
  the positives and the denominator without being anchors.

Two exact paths compute it. The dense path (:mod:`supcon.losses.dense`) builds the (anchors x
contrast) similarity matrix and lets autograd differentiate it. The tiled path
(:mod:`supcon.losses.tiled`) never holds that matrix: it sweeps blocks of columns with an online
log-sum-exp, keeps a few statistics per anchor, and recomputes each block in a hand-written
backward. Both give the same value and gradient; ``chunk_size="auto"`` picks the tiled path, in
blocks of :data:`AUTO_CHUNK` (1024), from :data:`AUTO_TILED_THRESHOLD` (8192) contrast rows on.
On CUDA with Triton installed, the tiled path runs as a fused Triton kernel when the options
allow it (see :mod:`supcon.kernels`).

The package: ``validation`` (the option choices and the argument checks), ``spec`` (which rows
are positives of which anchors: :class:`PositiveSpec`), ``logsumexp`` (row-wise log-sum-exp,
whole or online), ``dense``, ``group_sums`` (the tiled path's fast L_out / "all" case),
``tiled``, and ``supcon`` (the public function and module).

Notation used in the code: ``s[i, j] = z_i . z_j / t`` for anchor row ``i`` and contrast row
``j``; ``w[i, j] >= 0`` the positive weight; positives ``P(i) = {j != i: w > 0}``; negatives
``N(i) = {j != i: j is not a (possibly capped) positive}``.
"""

from supcon.losses.spec import PositiveSpec
from supcon.losses.supcon import AUTO_CHUNK, AUTO_TILED_THRESHOLD, SupConLoss, supcon_loss
from supcon.losses.validation import (CONTRAST_MODES, DENOMINATORS, REDUCTIONS, VARIANTS,
                                      ContrastMode, Denominator, Reduction, Variant)

__all__ = [
    "SupConLoss", "supcon_loss", "PositiveSpec",
    "AUTO_TILED_THRESHOLD", "AUTO_CHUNK",
    "VARIANTS", "CONTRAST_MODES", "DENOMINATORS", "REDUCTIONS",
    "Variant", "ContrastMode", "Denominator", "Reduction",
]
