"""Batched image corruptions with the CIFAR-10-C severity tables, and a reader for -C arrays.

The 15 benchmark corruptions and 4 extra ones of Hendrycks & Dietterich, "Benchmarking Neural
Network Robustness to Common Corruptions and Perturbations" (ICLR 2019), re-implemented as batched
torch operations that run on CPU and CUDA. Every corruption takes its five severities from the
CIFAR-10-C tables (``make_cifar_c.py``), so at 32x32 the corrupted images follow the same recipe
as the published CIFAR-10-C / CIFAR-100-C arrays.

Fidelity to the published definitions (at 32x32):

* Ports of the same maths (randomness drawn from torch instead of numpy; the tests check the
  blurs, zoom and HSV changes against scipy and colorsys): ``gaussian_noise``,
  ``shot_noise``, ``impulse_noise`` (skimage salt & pepper), ``speckle_noise``, ``gaussian_blur``
  (skimage/scipy Gaussian, nearest border, truncate 4), ``defocus_blur`` (anti-aliased disk kernel,
  reflect-101 border), ``zoom_blur`` (scipy ``zoom(order=1)`` of the central crop),
  ``motion_blur`` (ImageMagick's ``MotionBlurImage`` kernel: 2 * ceil(radius) + 1 taps of a
  one-sided Gaussian along a line, edge pixels outside the image; not checked against ImageMagick
  itself, which is not available here), ``fog`` (diamond-square plasma fractal), ``brightness``
  and ``saturate`` (HSV), ``contrast``, ``elastic_transform`` (random affine with reflect-101
  border, then Gaussian-smoothed displacement fields sampled with reflect border; OpenCV's
  1/32-pixel fixed-point warp is done in floating point), ``snow`` (uses the ported motion blur).
* ``jpeg_compression`` is baseline libjpeg(-turbo) as PIL calls it, in integer torch arithmetic:
  JFIF YCbCr in 16-bit fixed point, 4:2:0 with libjpeg's edge padding and biased 2x2 averaging,
  the integer "islow" DCT and inverse DCT, Annex K tables scaled by the quality factor and
  libjpeg-turbo's reciprocal quantisation, "fancy" triangular chroma upsampling. For images at
  least 5 pixels wide it reproduces Pillow's JPEG round trip bit for bit.
* Ports with small numerical differences: ``pixelate`` (PIL's BOX resampling weights, without
  PIL's 8-bit rounding between its horizontal and vertical passes: within one level of PIL);
  ``spatter`` (OpenCV's Canny, equalizeHist, emboss and box filters re-implemented; the distance
  transform is the exact Euclidean one instead of OpenCV's 5x5 chamfer approximation).
* Approximations: ``frost`` (the published version blends crops of six frost photographs that
  are not shipped here; a procedural texture of smoothed haze plus streaked ice needles, tinted
  pale blue, is blended with the published coefficients instead); ``glass_blur`` (the published
  version swaps each pixel with a random up-left neighbour sequentially in reverse raster order;
  here each iteration gathers every pixel from a random offset in the same window
  ``[-delta, delta)`` at once, which is batched but not a permutation).

Outputs are rounded to the nearest 8-bit level for ``uint8`` images (the published arrays
truncate), and clamped to [0, 1] for floating images.

Other image sizes: the tables were tuned for 32x32. For larger images, with
``s = min(H, W) / 32``, spatial parameters scale proportionally: blur sigmas and radii (gaussian,
defocus, glass, motion), glass displacement (``round(s)``), elastic amplitudes and affine jitter.
Random textures (snow layer, fog plasma, frost, spatter liquid, elastic displacement fields) are
drawn at a base size whose short side is 32 pixels, exactly as for CIFAR, and resized to the
image (bilinear), so they look like the CIFAR textures scaled up; the snow layer's motion blur runs
at full resolution with radius and sigma times ``s``. Images with a short side of 32 or less
(MNIST's 28x28, the 8x8 digits) use the published pixel values unchanged (``s = 1``) and draw
textures at their own size: shrinking the discrete kernels would make them vanish. Relative
parameters (zoom factors, pixelate ratio, JPEG quality, noise levels, colour changes) are used as
published. At 32x32 the recipe is CIFAR-10-C's.

One-channel images: noise, blur, geometric and JPEG corruptions act on the grey channel (JPEG
codes a single luminance component, as for PIL ``L`` images). Colour-dependent steps use the
luminance (ITU-R 601 weights 0.299, 0.587, 0.114) of their colours: the snow brightening uses the
grey value itself, frost's tint and spatter's water and mud colours are replaced by their
luminance. ``brightness`` on grey adds to the value channel directly. ``saturate`` treats the grey
image as RGB with R = G = B, applies the HSV change and returns the luminance; as grey has zero
saturation, severities 1 to 3 (which only scale saturation) leave grey images unchanged.
"""

from __future__ import annotations

from supcon.corruptions.arrays import load_corrupted_arrays
from supcon.corruptions.registry import CORRUPTION_GROUPS, CORRUPTIONS, EXTRA_CORRUPTIONS, corrupt, corrupt_dataset

__all__ = [
    "CORRUPTIONS",
    "EXTRA_CORRUPTIONS",
    "CORRUPTION_GROUPS",
    "corrupt",
    "corrupt_dataset",
    "load_corrupted_arrays",
]
