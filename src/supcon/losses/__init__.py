"""The supervised contrastive loss family (Khosla et al., NeurIPS 2020, arXiv 2004.11362).

One function, :func:`supcon_loss`, and its module wrapper, :class:`SupConLoss`, cover:

* ``L_out`` (the paper's eq. 2, the default) and ``L_in`` (eq. 3);
* SimCLR's NT-Xent (no labels, no mask: the positives are the other views of each image);
* integer labels, multi-hot labels and (soft) positive masks;
* the official TF code's ``denominator`` modes and ``positives_cap``;
* an extra contrast set (embeddings gathered from other GPUs, or a memory queue) that joins
  the positives and the denominator without being anchors.

Two exact paths compute it. The dense path (:mod:`supcon.losses.dense`) builds the (anchors x
contrast) similarity matrix; for L_out with the "all" denominator (the default) it keeps only
the matrix of exponentials and writes its own three-matmul backward
(:mod:`supcon.losses.dense_out_all`), for the other options autograd differentiates it. The
tiled path (:mod:`supcon.losses.tiled`) never holds that matrix: it sweeps blocks of columns with
an online log-sum-exp, keeps a few statistics per anchor, and recomputes each block in a
hand-written backward. Both give the same value and gradient. ``chunk_size="auto"`` chooses per
device type from measured crossovers (:data:`AUTO_DENSE_MAX_BYTES`, :data:`AUTO_TILED_THRESHOLD`,
:data:`AUTO_CHUNK`): on CPU the default options stay dense up to a 1 GiB matrix (16384 x 16384
float32), faster there than the tiled path's four matmuls, and the other options tile from 4096
contrast rows; on CUDA the tiled path takes over from 8192 contrast rows, as a fused Triton kernel when Triton is installed and the options allow
it (see :mod:`supcon.kernels`).

The package: ``validation`` (the option choices and the argument checks), ``spec`` (which rows
are positives of which anchors: :class:`PositiveSpec`), ``logsumexp`` (row-wise log-sum-exp,
whole or online), ``dense``, ``dense_out_all`` (its saved-matrix case), ``group_sums`` (the
positive terms of L_out / "all" from group sums, and the tiled path's route for it), ``tiled``,
and ``supcon`` (the public function and module).

Notation used in the code: ``s[i, j] = z_i . z_j / t`` for anchor row ``i`` and contrast row
``j``; ``w[i, j] >= 0`` the positive weight; positives ``P(i) = {j != i: w > 0}``; negatives
``N(i) = {j != i: j is not a (possibly capped) positive}``.
"""

from supcon.losses.spec import PositiveSpec
from supcon.losses.supcon import (AUTO_CHUNK, AUTO_DENSE_MAX_BYTES, AUTO_TILED_THRESHOLD,
                                  SupConLoss, supcon_loss)
from supcon.losses.validation import (CONTRAST_MODES, DENOMINATORS, REDUCTIONS, VARIANTS,
                                      ContrastMode, Denominator, Reduction, Variant)

__all__ = [
    "SupConLoss", "supcon_loss", "PositiveSpec",
    "AUTO_DENSE_MAX_BYTES", "AUTO_TILED_THRESHOLD", "AUTO_CHUNK",
    "VARIANTS", "CONTRAST_MODES", "DENOMINATORS", "REDUCTIONS",
    "Variant", "ContrastMode", "Denominator", "Reduction",
]
