"""Baseline JPEG round trip as libjpeg(-turbo) does it for Pillow, in integer torch arithmetic.

JFIF YCbCr in 16-bit fixed point, 4:2:0 with libjpeg's edge padding and biased 2x2 averaging, the
integer "islow" DCT and inverse DCT, Annex K tables scaled by the quality factor and
libjpeg-turbo's reciprocal quantisation, "fancy" triangular chroma upsampling. For images at least
5 pixels wide it reproduces Pillow's JPEG round trip bit for bit. One-channel images are coded as
a single luminance component, as PIL writes mode "L".
"""

from __future__ import annotations

import functools

import torch

from supcon.corruptions.filters import border_index, pad
from supcon.corruptions.tables import JPEG_QUALITY

# JPEG Annex K quantisation tables (row-major, natural order).
_JPEG_LUMA_TABLE = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)
_JPEG_CHROMA_TABLE = (
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
) + (99,) * 32


def _jpeg_quant_table(base: tuple[int, ...], quality: int) -> list[int]:
    """libjpeg's jpeg_set_quality scaling of an 8x8 table (baseline: clamp to 1..255)."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return [min(max((q * scale + 50) // 100, 1), 255) for q in base]


# libjpeg's "islow" integer DCT: 13-bit fixed-point constants FIX(x) = round(x * 2**13).
_CONST_BITS, _PASS1_BITS = 13, 2
_FIX_0_298, _FIX_0_390, _FIX_0_541, _FIX_0_765 = 2446, 3196, 4433, 6270
_FIX_0_899, _FIX_1_175, _FIX_1_501, _FIX_1_847 = 7373, 9633, 12299, 15137
_FIX_1_961, _FIX_2_053, _FIX_2_562, _FIX_3_072 = 16069, 16819, 20995, 25172


def _descale(value: torch.Tensor, bits: int) -> torch.Tensor:
    """Integer right shift by bits with rounding, as libjpeg's DESCALE."""
    return (value + (1 << (bits - 1))) >> bits


def _rotations_odd(t4: torch.Tensor, t5: torch.Tensor, t6: torch.Tensor, t7: torch.Tensor):
    """The shared odd part of the islow forward and inverse 1-D transforms."""
    z1, z2, z3, z4 = t4 + t7, t5 + t6, t4 + t6, t5 + t7
    z5 = (z3 + z4) * _FIX_1_175
    z1, z2 = z1 * -_FIX_0_899, z2 * -_FIX_2_562
    z3, z4 = z3 * -_FIX_1_961 + z5, z4 * -_FIX_0_390 + z5
    return (t4 * _FIX_0_298 + z1 + z3, t5 * _FIX_2_053 + z2 + z4,
            t6 * _FIX_3_072 + z2 + z3, t7 * _FIX_1_501 + z1 + z4)


def _fdct_islow_1d(block: torch.Tensor, dim: int, first_pass: bool) -> torch.Tensor:
    """One pass of libjpeg's jpeg_fdct_islow along dim (size 8) of an int64 tensor."""
    v = block.unbind(dim)
    t0, t7 = v[0] + v[7], v[0] - v[7]
    t1, t6 = v[1] + v[6], v[1] - v[6]
    t2, t5 = v[2] + v[5], v[2] - v[5]
    t3, t4 = v[3] + v[4], v[3] - v[4]
    t10, t13, t11, t12 = t0 + t3, t0 - t3, t1 + t2, t1 - t2
    bits = _CONST_BITS - _PASS1_BITS if first_pass else _CONST_BITS + _PASS1_BITS
    if first_pass:
        out0, out4 = (t10 + t11) << _PASS1_BITS, (t10 - t11) << _PASS1_BITS
    else:
        out0, out4 = _descale(t10 + t11, _PASS1_BITS), _descale(t10 - t11, _PASS1_BITS)
    z1 = (t12 + t13) * _FIX_0_541
    out2, out6 = _descale(z1 + t13 * _FIX_0_765, bits), _descale(z1 - t12 * _FIX_1_847, bits)
    odd7, odd5, odd3, odd1 = (_descale(o, bits) for o in _rotations_odd(t4, t5, t6, t7))
    return torch.stack((out0, odd1, out2, odd3, out4, odd5, out6, odd7), dim=dim)


def _idct_islow_1d(coef: torch.Tensor, dim: int, bits: int) -> torch.Tensor:
    """One pass of libjpeg's jpeg_idct_islow along dim (size 8) of an int64 tensor."""
    v = coef.unbind(dim)
    z1 = (v[2] + v[6]) * _FIX_0_541
    t2, t3 = z1 - v[6] * _FIX_1_847, z1 + v[2] * _FIX_0_765
    t0, t1 = (v[0] + v[4]) << _CONST_BITS, (v[0] - v[4]) << _CONST_BITS
    t10, t13, t11, t12 = t0 + t3, t0 - t3, t1 + t2, t1 - t2
    o0, o1, o2, o3 = _rotations_odd(v[7], v[5], v[3], v[1])
    out = (t10 + o3, t11 + o2, t12 + o1, t13 + o0, t13 - o0, t12 - o1, t11 - o2, t10 - o3)
    return torch.stack([_descale(o, bits) for o in out], dim=dim)


def _quantise(coef: torch.Tensor, table: list[int]) -> torch.Tensor:
    """libjpeg-turbo's quantisation of 8x-scaled islow coefficients: multiply by a 16-bit reciprocal."""
    reciprocal, correction, shift = [], [], []
    for q in table:
        divisor = 8 * q
        bits = 16 + divisor.bit_length() - 1
        factor, remainder, rounding = (1 << bits) // divisor, (1 << bits) % divisor, divisor // 2
        if remainder == 0:  # power of two
            factor, bits = factor >> 1, bits - 1
        elif remainder <= divisor // 2:
            rounding += 1
        else:
            factor += 1
        reciprocal.append(factor)
        correction.append(rounding)
        shift.append(bits)
    as_block = functools.partial(torch.tensor, dtype=torch.int64, device=coef.device)
    reciprocal, correction, shift = (as_block(v).view(8, 8) for v in (reciprocal, correction, shift))
    magnitude = ((coef.abs() + correction) * reciprocal) >> shift
    return torch.where(coef < 0, -magnitude, magnitude)


def _jpeg_code_plane(plane: torch.Tensor, table: list[int]) -> torch.Tensor:
    """Encode and decode int64 samples (B, K, H, W), H and W multiples of 8, with one quantisation table."""
    batch, planes, height, width = plane.shape
    blocks = (plane - 128).view(batch, planes, height // 8, 8, width // 8, 8).transpose(3, 4)
    coef = _fdct_islow_1d(_fdct_islow_1d(blocks, -1, True), -2, False)  # rows, then columns; scaled by 8
    dequantised = _quantise(coef, table) * torch.tensor(table, dtype=torch.int64, device=plane.device).view(8, 8)
    decoded = _idct_islow_1d(dequantised, -2, _CONST_BITS - _PASS1_BITS)  # columns, then rows
    decoded = _idct_islow_1d(decoded, -1, _CONST_BITS + _PASS1_BITS + 3)
    return (decoded + 128).clamp(0, 255).transpose(3, 4).reshape(batch, planes, height, width)


def _fancy_upsample(chroma: torch.Tensor) -> torch.Tensor:
    """libjpeg's h2v2 "fancy" (triangular) 2x upsampling of int64 (B, K, h, w), with its rounding."""
    height, width = chroma.shape[-2:]
    above = chroma.index_select(-2, border_index(height, 1, 0, "replicate", chroma.device)[:-1])
    below = chroma.index_select(-2, border_index(height, 0, 1, "replicate", chroma.device)[1:])
    # column sums for the upper and lower output row of each input row, interleaved
    sums = torch.stack((3 * chroma + above, 3 * chroma + below), dim=-2).flatten(-3, -2)
    left = sums.index_select(-1, border_index(width, 1, 0, "replicate", chroma.device)[:-1])
    right = sums.index_select(-1, border_index(width, 0, 1, "replicate", chroma.device)[1:])
    even, odd = (3 * sums + left + 8) >> 4, (3 * sums + right + 7) >> 4
    return torch.stack((even, odd), dim=-1).flatten(-2, -1)


def _fix16(value: float) -> int:
    return int(value * 65536 + 0.5)


_HALF, _CHROMA_OFFSET = 1 << 15, 128 << 16  # libjpeg's ONE_HALF and CBCR_OFFSET in 16-bit fixed point


def _rgb_to_ycbcr(r: torch.Tensor, g: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """libjpeg's JFIF colour conversion of int64 samples: luma (B, H, W) and chroma (B, 2, H, W)."""
    luma = (_fix16(0.299) * r + _fix16(0.587) * g + _fix16(0.114) * b + _HALF) >> 16
    cb = (-_fix16(0.16874) * r - _fix16(0.33126) * g + _fix16(0.5) * b + _CHROMA_OFFSET + _HALF - 1) >> 16
    cr = (_fix16(0.5) * r - _fix16(0.41869) * g - _fix16(0.08131) * b + _CHROMA_OFFSET + _HALF - 1) >> 16
    return luma, torch.stack((cb, cr), dim=1)


def _downsample_h2v2(chroma: torch.Tensor) -> torch.Tensor:
    """libjpeg's 2x2 averaging of int64 (B, K, H, W), H and W even, with its alternating bias 1, 2."""
    batch, planes, height, width = chroma.shape
    sums = chroma.view(batch, planes, height // 2, 2, width // 2, 2).sum(dim=(3, 5))
    bias = 1 + torch.arange(width // 2, device=chroma.device).remainder(2)
    return (sums + bias) >> 2


def _ycbcr_to_rgb(luma: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    """libjpeg's JFIF inverse conversion: luma (B, H, W) and centred chroma (B, 2, H, W) -> (B, 3, H, W)."""
    cb, cr = chroma.unbind(1)
    red = luma + ((_fix16(1.402) * cr + _HALF) >> 16)
    green = luma + ((-_fix16(0.34414) * cb - _fix16(0.71414) * cr + _HALF) >> 16)
    blue = luma + ((_fix16(1.772) * cb + _HALF) >> 16)
    return torch.stack((red, green, blue), dim=1).clamp(0, 255)


def jpeg_compression(x: torch.Tensor, severity: int, generator: torch.Generator | None) -> torch.Tensor:
    """JPEG round trip of x (B, C, H, W) in [0, 1] at the severity's quality; same shape."""
    quality = JPEG_QUALITY[severity - 1]
    height, width = x.shape[-2:]
    samples = torch.floor(x.clamp(0, 1) * 255 + 0.5).to(torch.int64)
    luma_table = _jpeg_quant_table(_JPEG_LUMA_TABLE, quality)
    if x.shape[1] == 1:  # a single luminance component, as PIL writes mode "L"
        padded = pad(samples, 0, -height % 8, 0, -width % 8, "replicate")
        out = _jpeg_code_plane(padded, luma_table)[..., :height, :width]
        return out.to(x.dtype) / 255
    # libjpeg pads columns by repeating the last pixel, rows to an even count by repeating the last
    # row, and then each component's rows to whole blocks by repeating its last (downsampled) row
    luma, chroma = _rgb_to_ycbcr(*pad(samples, 0, height % 2, 0, -width % 16, "replicate").unbind(1))
    even_h = luma.shape[-2]
    chroma = pad(_downsample_h2v2(chroma), 0, -(even_h // 2) % 8, 0, 0, "replicate")
    luma = pad(luma.unsqueeze(1), 0, -even_h % 8, 0, 0, "replicate")
    luma = _jpeg_code_plane(luma, luma_table)[:, 0, :height, :width]
    chroma = _jpeg_code_plane(chroma, _jpeg_quant_table(_JPEG_CHROMA_TABLE, quality))
    # the decoder upsamples the real chroma samples, repeating the last ones at the edges
    chroma = _fancy_upsample(chroma[..., : (height + 1) // 2, : (width + 1) // 2])[..., :height, :width] - 128
    return _ycbcr_to_rgb(luma, chroma).to(x.dtype) / 255
