"""Tests for supcon.corruptions.tables: every severity table has five entries of the documented form."""

from __future__ import annotations

import numpy as np
import pytest

from supcon.corruptions import tables

TABLES = {  # name: values per severity (1 for a scalar)
    "GAUSSIAN_NOISE": 1, "SHOT_NOISE": 1, "IMPULSE_NOISE": 1, "SPECKLE_NOISE": 1, "GAUSSIAN_BLUR": 1,
    "GLASS_BLUR": 3, "DEFOCUS_BLUR": 2, "MOTION_BLUR": 2, "SNOW": 7, "FROST": 2, "FOG": 2, "BRIGHTNESS": 1,
    "CONTRAST": 1, "ELASTIC": 3, "PIXELATE": 1, "JPEG_QUALITY": 1, "SPATTER": 6, "SATURATE": 2,
}


@pytest.mark.parametrize("name", list(TABLES))
def test_five_severities(name):
    table = getattr(tables, name)
    assert len(table) == 5
    for row in table:
        assert (len(row) if isinstance(row, tuple) else 1) == TABLES[name], row


def test_zoom_blur_factors():
    # make_cifar_c.py: np.arange(1, stop, 0.01) for stop 1.06, 1.11, 1.16, 1.21, 1.26 (numpy's float
    # steps include 1.06 and 1.11 themselves)
    assert len(tables.ZOOM_BLUR) == 5
    for factors, stop in zip(tables.ZOOM_BLUR, (1.06, 1.11, 1.16, 1.21, 1.26)):
        assert factors == tuple(float(z) for z in np.arange(1, stop, 0.01))
        assert factors[0] == 1.0 and all(abs(b - a - 0.01) < 1e-9 for a, b in zip(factors, factors[1:]))
