"""Tests for supcon.corruptions.jpeg: the JPEG round trip equals Pillow's bit for bit."""

from __future__ import annotations

import io

import pytest
import torch
from corruption_cases import pil_roundtrip, scene
from PIL import Image

from supcon.corruptions import corrupt


@pytest.mark.parametrize("layout", [(2, 3, 32, 32), (2, 1, 28, 28), (1, 3, 17, 23), (1, 3, 24, 18)])
def test_jpeg_matches_pil_bit_for_bit(layout):
    images = torch.round(scene(*layout) * 255).to(torch.uint8)
    for severity, quality in enumerate((80, 65, 58, 50, 40), start=1):
        def jpeg(pil, quality=quality):
            buffer = io.BytesIO()
            pil.save(buffer, "JPEG", quality=quality)
            return Image.open(buffer)

        expected = pil_roundtrip(images, jpeg)
        assert torch.equal(corrupt(images, "jpeg_compression", severity), expected), severity
        assert (expected.int() - images.int()).abs().float().mean() > 2, severity  # the codec really changes it
        floats = corrupt(images.float() / 255, "jpeg_compression", severity)
        assert torch.equal(torch.round(floats * 255).to(torch.uint8), expected), severity
