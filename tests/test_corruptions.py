"""Tests for supcon.corruptions: the output contract, severity trends, determinism, the ports
against independent references (scipy, PIL, colorsys) and the CIFAR-10-C array reader."""

from __future__ import annotations

import colorsys
import functools
import io
import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from supcon.corruptions import (
    CORRUPTION_GROUPS,
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    corrupt,
    corrupt_dataset,
    load_corrupted_arrays,
)

ALL = CORRUPTIONS + EXTRA_CORRUPTIONS
RANDOM = {"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "glass_blur", "motion_blur",
          "snow", "frost", "fog", "elastic_transform", "spatter"}
LAYOUTS = {"rgb32": (4, 3, 32, 32), "grey28": (2, 1, 28, 28)}
DTYPES = {"float32": torch.float32, "uint8": torch.uint8}


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    # tiny tensors: threads only add contention on a shared machine
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def scene(batch: int, channels: int, height: int, width: int) -> torch.Tensor:
    """Natural-ish float images in [0, 1]: colour gradients, a disk, a bar and a little texture."""
    gen = torch.Generator().manual_seed(1234)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    out = torch.stack([0.2 + 0.6 * xx, 0.3 + 0.5 * yy, 0.8 - 0.5 * xx * yy])[:channels]
    out = out.expand(batch, channels, height, width).clone()
    for i in range(batch):
        cy, cx = (0.3 + 0.4 * torch.rand(2, generator=gen)).tolist()
        colour = torch.rand(3, generator=gen)[:channels].view(channels, 1, 1)
        out[i] = torch.where((yy - cy) ** 2 + (xx - cx) ** 2 < 0.04, colour, out[i])
        out[i, :, height // 8: height // 3, width // 2: width - width // 8] = 1.0 - colour
    return (out + 0.06 * torch.rand(batch, channels, height, width, generator=gen)).clamp(0, 1)


def clean_images(layout: str, dtype: str) -> torch.Tensor:
    images = scene(*LAYOUTS[layout])
    return torch.round(images * 255).to(torch.uint8) if dtype == "uint8" else images


@functools.lru_cache(maxsize=None)
def outputs(name: str, layout: str, dtype: str) -> tuple[torch.Tensor, ...]:
    """The corrupted clean_images at severities 1..5, each with a generator seeded 0."""
    images = clean_images(layout, dtype)
    return tuple(corrupt(images, name, s, generator=torch.Generator().manual_seed(0)) for s in range(1, 6))


def mean_abs_diffs(name: str, layout: str) -> list[float]:
    clean = clean_images(layout, "float32")
    return [(out - clean).abs().mean().item() for out in outputs(name, layout, "float32")]


def to_unit(images: torch.Tensor) -> torch.Tensor:
    return images.double() / 255 if images.dtype == torch.uint8 else images.double()


# ------------------------------------------------------------------------------------ names
def test_names_and_groups():
    assert CORRUPTIONS == ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
                           "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
                           "elastic_transform", "pixelate", "jpeg_compression")
    assert EXTRA_CORRUPTIONS == ("speckle_noise", "gaussian_blur", "spatter", "saturate")
    assert set(CORRUPTION_GROUPS) == {"noise", "blur", "weather", "digital", "extra"}
    grouped = [n for group in CORRUPTION_GROUPS.values() for n in group]
    assert sorted(grouped) == sorted(ALL)  # each corruption in exactly one group
    assert CORRUPTION_GROUPS["extra"] == EXTRA_CORRUPTIONS


# ------------------------------------------------------------------------------------ contract
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", ALL)
def test_output_contract(name, layout, dtype):
    images = clean_images(layout, dtype)
    for severity, out in enumerate(outputs(name, layout, dtype), start=1):
        assert out.shape == images.shape, severity
        assert out.dtype == images.dtype, severity
        assert out.device == images.device, severity
        if out.is_floating_point():
            assert torch.isfinite(out).all(), severity
            assert out.min() >= 0 and out.max() <= 1, severity


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", ALL)
def test_changes_the_image(name, layout, dtype):
    clean = to_unit(clean_images(layout, dtype))
    for severity, out in enumerate(outputs(name, layout, dtype), start=1):
        diff = (to_unit(out) - clean).abs().mean().item()
        if name == "saturate" and layout == "grey28" and severity <= 3:
            # grey has zero saturation, and severities 1-3 only scale saturation
            assert diff < 1e-6, severity
        else:
            assert diff > 0, severity


# ------------------------------------------------------------------------------------ severity
NON_MONOTONE = {"glass_blur", "frost", "elastic_transform", "spatter", "saturate"}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", sorted(set(ALL) - NON_MONOTONE))
def test_change_grows_with_severity(name, layout):
    d = mean_abs_diffs(name, layout)
    # 5% slack: some published steps are nearly flat (motion_blur 3->4 differs only in radius, snow 2->3)
    for k in range(4):
        assert d[k + 1] >= 0.95 * d[k], f"severity {k + 2} changes less than {k + 1}: {d}"
    assert d[4] > d[0], d


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_glass_blur_severity_trend(layout):
    # the published table is (sigma, delta, iterations) = (.05,1,1) (.25,1,1) (.4,1,1) (.25,1,2) (.4,1,2):
    # within one iteration count a wider blur smooths the shuffle noise away again, so only the
    # second shuffling iteration (severities 4, 5) is a reliable step up
    d = mean_abs_diffs("glass_blur", layout)
    assert min(d[3], d[4]) > max(d[0], d[1], d[2]), d


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_frost_severity_trend(layout):
    # published (image, frost) weights (1,.2) (1,.3) (.9,.4) (.85,.4) (.75,.45): from severity 3 on the
    # image is dimmed more than frost is added, so only the overall trend is monotone
    d = mean_abs_diffs("frost", layout)
    assert d[4] > d[0], d


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_spatter_severity_trend(layout):
    # severities 1-3 splash water, 4-5 mud (a different mechanism); each branch grows
    d = mean_abs_diffs("spatter", layout)
    assert d[0] <= d[1] <= d[2], d
    assert d[3] <= d[4], d
    assert d[4] > d[0], d


def test_saturate_severity_trend():
    # published (factor, offset): (.3,0) (.1,0) desaturate, (1.5,0) (2,.1) (2.5,.2) oversaturate
    d = mean_abs_diffs("saturate", "rgb32")
    assert d[0] < d[1], d
    assert d[2] <= d[3] <= d[4], d
    grey = mean_abs_diffs("saturate", "grey28")
    assert grey[3] < grey[4], grey


def test_elastic_local_distortion_grows_with_severity():
    # The published affine jitter shrinks with severity (8%, 7%, 6%, 5%, 3% of the size) while the
    # local displacement grows, so the plain difference to the clean image falls. On a linear ramp
    # an affine warp and bilinear sampling keep the centre planar: the residual of a plane fit
    # measures the non-affine (elastic) part alone.
    size = 32
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                            indexing="ij")
    ramp = (0.2 + 0.4 * xx / (size - 1) + 0.3 * yy / (size - 1)).expand(4, 1, size, size).clone()
    centre = slice(8, 24)
    design = torch.stack([xx[centre, centre].flatten(), yy[centre, centre].flatten(),
                          torch.ones(256, dtype=torch.float64)], dim=1)
    residuals = []
    for severity in range(1, 6):
        out = corrupt(ramp, "elastic_transform", severity, generator=torch.Generator().manual_seed(0))
        values = out[:, 0, centre, centre].reshape(4, 256, 1)
        fit = torch.linalg.lstsq(design.expand(4, 256, 3), values).solution
        residuals.append((design @ fit - values).abs().mean().item())
        assert (out - ramp).abs().mean() > 1e-3  # the affine part moves the image at every severity
    assert residuals[0] < 1e-9, residuals  # severity 1 is a pure affine warp
    assert all(residuals[k] < residuals[k + 1] for k in range(4)), residuals


# ------------------------------------------------------------------------------------ determinism
@pytest.mark.parametrize("name", ALL)
def test_deterministic_given_generator(name):
    images = scene(2, 3, 32, 32)
    first = corrupt(images, name, 3, generator=torch.Generator().manual_seed(7))
    again = corrupt(images, name, 3, generator=torch.Generator().manual_seed(7))
    other = corrupt(images, name, 3, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first, again)
    if name in RANDOM:
        assert not torch.equal(first, other)
    else:
        assert torch.equal(first, other)


def test_default_generator_follows_global_seed():
    images = scene(2, 3, 16, 16)
    torch.manual_seed(3)
    first = corrupt(images, "gaussian_noise", 2)
    torch.manual_seed(3)
    assert torch.equal(first, corrupt(images, "gaussian_noise", 2))


def test_draws_advance_the_generator():
    images = scene(2, 3, 16, 16)
    gen = torch.Generator().manual_seed(0)
    assert not torch.equal(corrupt(images, "shot_noise", 3, generator=gen),
                           corrupt(images, "shot_noise", 3, generator=gen))


# ------------------------------------------------------------------------------------ other inputs
@pytest.mark.parametrize("name", ALL)
def test_other_sizes_and_dtypes(name):
    cases = [scene(1, 3, 8, 8), scene(2, 3, 17, 23), scene(1, 1, 40, 36),
             scene(2, 3, 32, 32).double(), scene(2, 1, 12, 12).half()]
    for images in cases:
        out = corrupt(images, name, 5, generator=torch.Generator().manual_seed(0))
        assert out.shape == images.shape and out.dtype == images.dtype
        assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_empty_batch():
    images = torch.zeros(0, 3, 32, 32, dtype=torch.uint8)
    assert corrupt(images, "fog", 2).shape == (0, 3, 32, 32)


# ------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("severity", [0, 6, -1, "3", 3.0, True, None])
def test_bad_severity(severity):
    with pytest.raises(ValueError, match="severity"):
        corrupt(scene(1, 3, 8, 8), "contrast", severity)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="gaussian_noise") as info:
        corrupt(scene(1, 3, 8, 8), "rain", 1)
    assert "saturate" in str(info.value) and "'rain'" in str(info.value)


@pytest.mark.parametrize("images", [torch.zeros(2, 2, 8, 8), torch.zeros(3, 8, 8),
                                    torch.zeros(1, 3, 8, 8, dtype=torch.int32), np.zeros((1, 3, 8, 8))])
def test_bad_images(images):
    with pytest.raises(ValueError, match="images"):
        corrupt(images, "contrast", 1)


# ------------------------------------------------------------------------------------ references
def test_gaussian_noise_formula():
    images = scene(2, 3, 16, 16)
    out = corrupt(images, "gaussian_noise", 3, generator=torch.Generator().manual_seed(5))
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(out, (images + 0.08 * noise).clamp(0, 1))


def test_shot_noise_statistics():
    images = torch.full((1, 3, 64, 64), 0.5)
    out = corrupt(images, "shot_noise", 5, generator=torch.Generator().manual_seed(0))  # Poisson(0.5 * 50) / 50
    assert abs(out.mean().item() - 0.5) < 0.01
    assert abs(out.std().item() - math.sqrt(0.5 / 50)) < 0.01


def test_impulse_noise_statistics():
    images = torch.full((1, 3, 64, 64), 0.5)
    out = corrupt(images, "impulse_noise", 5, generator=torch.Generator().manual_seed(0))
    salt, pepper = (out == 1).float().mean().item(), (out == 0).float().mean().item()
    assert abs(salt + pepper - 0.07) < 0.01 and abs(salt - pepper) < 0.01
    assert ((out == 0) | (out == 1) | (out == 0.5)).all()


def test_contrast_formula():
    images = scene(2, 3, 16, 16).double()
    means = images.mean(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(corrupt(images, "contrast", 4), ((images - means) * 0.3 + means).clamp(0, 1))


@pytest.mark.parametrize("name, severity", [("brightness", 2), ("brightness", 5), ("saturate", 2), ("saturate", 5)])
def test_hsv_corruptions_match_colorsys(name, severity):
    images = scene(2, 3, 6, 6).double()
    images[0, :, 0, 0] = 0.0  # black pixel: hue and saturation undefined
    images[0, :, 0, 1] = torch.tensor([0.5, 0.5, 0.2])  # tie between red and green
    out = corrupt(images, name, severity)
    brightness = (0.05, 0.1, 0.15, 0.2, 0.3)[severity - 1]
    factor, offset = ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2))[severity - 1]
    expected = torch.empty_like(images)
    for b in range(2):
        for i in range(6):
            for j in range(6):
                h, s, v = colorsys.rgb_to_hsv(*images[b, :, i, j].tolist())
                if name == "brightness":
                    v = min(max(v + brightness, 0.0), 1.0)
                else:
                    s = min(max(s * factor + offset, 0.0), 1.0)
                expected[b, :, i, j] = torch.tensor(colorsys.hsv_to_rgb(h, s, v))
    torch.testing.assert_close(out, expected.clamp(0, 1))


def test_gaussian_blur_matches_scipy():
    images = scene(2, 3, 32, 32).double()
    for severity, sigma in enumerate((0.4, 0.6, 0.7, 0.8, 1.0), start=1):
        expected = ndimage.gaussian_filter(images.numpy(), sigma=(0, 0, sigma, sigma), mode="nearest", truncate=4.0)
        torch.testing.assert_close(corrupt(images, "gaussian_blur", severity), torch.from_numpy(expected))


def _reference_disk(radius: float, alias_blur: float) -> np.ndarray:
    grid = np.arange(-8, 9)
    disk = ((grid[:, None] ** 2 + grid[None, :] ** 2) <= radius ** 2).astype(np.float64)
    disk /= disk.sum()
    taps = np.exp(-np.arange(-1, 2) ** 2 / (2 * alias_blur ** 2))
    taps /= taps.sum()
    return ndimage.correlate(disk, np.outer(taps, taps), mode="mirror")


def test_defocus_blur_matches_disk_filter():
    images = scene(2, 3, 32, 32).double()
    for severity, (radius, alias) in enumerate([(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)], 1):
        kernel = _reference_disk(radius, alias)
        expected = np.stack([[ndimage.correlate(ch, kernel, mode="mirror") for ch in img] for img in images.numpy()])
        torch.testing.assert_close(corrupt(images, "defocus_blur", severity), torch.from_numpy(expected).clamp(0, 1))


def _reference_clipped_zoom(image: np.ndarray, zoom: float) -> np.ndarray:
    side = image.shape[0]
    crop = int(np.ceil(side / zoom))
    top = (side - crop) // 2
    zoomed = ndimage.zoom(image[top:top + crop, top:top + crop], (zoom, zoom, 1), order=1)
    trim = (zoomed.shape[0] - side) // 2
    return zoomed[trim:trim + side, trim:trim + side]


@pytest.mark.parametrize("layout", [(1, 3, 32, 32), (1, 1, 28, 28)])
def test_zoom_blur_matches_scipy_zoom(layout):
    images = scene(*layout).double()
    hwc = images[0].permute(1, 2, 0).numpy()
    for severity, stop in enumerate((1.06, 1.11, 1.16, 1.21, 1.26), start=1):
        factors = np.arange(1, stop, 0.01)
        expected = (hwc + sum(_reference_clipped_zoom(hwc, z) for z in factors)) / (len(factors) + 1)
        out = corrupt(images, "zoom_blur", severity)[0].permute(1, 2, 0)
        torch.testing.assert_close(out, torch.from_numpy(expected).clamp(0, 1))


def _pil_roundtrip(images: torch.Tensor, fn) -> torch.Tensor:
    result = []
    for image in images:
        array = image.permute(1, 2, 0).numpy()
        pil = Image.fromarray(array[..., 0] if image.shape[0] == 1 else array)
        out = np.asarray(fn(pil))
        result.append(torch.from_numpy(out.reshape(*out.shape[:2], -1).copy()).permute(2, 0, 1))
    return torch.stack(result)


@pytest.mark.parametrize("layout", [(2, 3, 32, 32), (2, 1, 28, 28), (1, 3, 17, 23)])
def test_pixelate_matches_pil_box(layout):
    images = torch.round(scene(*layout) * 255).to(torch.uint8)
    height, width = layout[2:]
    for severity, ratio in enumerate((0.95, 0.9, 0.85, 0.75, 0.65), start=1):
        size = (int(width * ratio), int(height * ratio))
        expected = _pil_roundtrip(images, lambda p: p.resize(size, Image.BOX).resize((width, height), Image.BOX))
        diff = (corrupt(images, "pixelate", severity).int() - expected.int()).abs()
        assert diff.max() <= 1, severity  # PIL rounds to 8 bits between its two passes


@pytest.mark.parametrize("layout", [(2, 3, 32, 32), (2, 1, 28, 28), (1, 3, 17, 23), (1, 3, 24, 18)])
def test_jpeg_matches_pil_bit_for_bit(layout):
    images = torch.round(scene(*layout) * 255).to(torch.uint8)
    for severity, quality in enumerate((80, 65, 58, 50, 40), start=1):
        def jpeg(pil, quality=quality):
            buffer = io.BytesIO()
            pil.save(buffer, "JPEG", quality=quality)
            return Image.open(buffer)

        expected = _pil_roundtrip(images, jpeg)
        assert torch.equal(corrupt(images, "jpeg_compression", severity), expected), severity
        assert (expected.int() - images.int()).abs().float().mean() > 2, severity  # the codec really changes it
        floats = corrupt(images.float() / 255, "jpeg_compression", severity)
        assert torch.equal(torch.round(floats * 255).to(torch.uint8), expected), severity


def test_motion_blur_is_a_one_sided_gaussian_line():
    images = torch.zeros(3, 1, 32, 32, dtype=torch.float64)
    images[:, :, 16, 16] = 1.0
    taps = torch.exp(-torch.arange(13, dtype=torch.float64) ** 2 / 2)  # severity 1: radius 6, sigma 1
    out = corrupt(images, "motion_blur", 1, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out[:, 0, 16, 16], torch.full((3,), 1 / taps.sum().item(), dtype=torch.float64))
    torch.testing.assert_close(out.sum(dim=(1, 2, 3)), torch.ones(3, dtype=torch.float64))
    # the impulse is smeared to one side only: (almost) nothing lands right of the impulse, since
    # the angle is within +-45 degrees and tap i reads the pixel i steps along that direction
    assert out[:, 0, :, 17:].sum() < 1e-12
    assert (out[:, 0, :, :16].sum(dim=(1, 2)) > 0.3).all()


# ------------------------------------------------------------------------------------ datasets
def test_corrupt_dataset_is_reproducible():
    images = torch.round(scene(5, 3, 16, 16) * 255).to(torch.uint8)
    first = corrupt_dataset(images, "gaussian_noise", 2, seed=1, batch_size=2)
    assert first.shape == images.shape and first.dtype == torch.uint8
    assert torch.equal(first, corrupt_dataset(images, "gaussian_noise", 2, seed=1, batch_size=2))
    assert not torch.equal(first, corrupt_dataset(images, "gaussian_noise", 2, seed=2, batch_size=2))
    # each (name, severity) combination draws its own noise, not a rescaled copy of another's
    sev2, sev3 = (corrupt_dataset(images.double() / 255, "gaussian_noise", s, seed=1) for s in (2, 3))
    noise2, noise3 = (sev2 - images / 255) / 0.06, (sev3 - images / 255) / 0.08
    assert not torch.allclose(noise2, noise3, atol=0.1)


def test_corrupt_dataset_equals_corrupt_for_deterministic_corruptions():
    images = scene(5, 3, 16, 16)
    torch.testing.assert_close(corrupt_dataset(images, "contrast", 3, batch_size=2), corrupt(images, "contrast", 3))


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"seed": "0"}, {"severity": 0}, {"name": "blur"}])
def test_corrupt_dataset_errors(kwargs):
    args = {"name": "contrast", "severity": 1, **kwargs}
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        corrupt_dataset(scene(2, 3, 8, 8), args.pop("name"), args.pop("severity"), **args)


def _write_c_layout(root, name="fog", n=3, shape=(32, 32, 3)):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5 * n, *shape), dtype=np.uint8)
    labels = np.tile(np.arange(n, dtype=np.uint8), 5)
    np.save(root / f"{name}.npy", images)
    np.save(root / "labels.npy", labels)
    return images, labels


@pytest.mark.parametrize("severity", [1, 2, 5])
def test_load_corrupted_arrays(tmp_path, severity):
    images, labels = _write_c_layout(tmp_path)
    x, y = load_corrupted_arrays(tmp_path, "fog", severity)
    assert x.shape == (3, 3, 32, 32) and x.dtype == torch.uint8
    assert y.shape == (3,) and y.dtype == torch.int64
    part = slice(3 * (severity - 1), 3 * severity)
    assert torch.equal(x, torch.from_numpy(images[part]).permute(0, 3, 1, 2))
    assert torch.equal(y, torch.from_numpy(labels[part].astype(np.int64)))
    x2, _ = load_corrupted_arrays(str(tmp_path), "fog", severity)  # str root works too
    assert torch.equal(x, x2)


def test_load_corrupted_arrays_missing_files(tmp_path):
    with pytest.raises(ValueError, match="fog.npy"):
        load_corrupted_arrays(tmp_path, "fog", 1)
    _write_c_layout(tmp_path)
    (tmp_path / "labels.npy").unlink()
    with pytest.raises(ValueError, match="labels.npy"):
        load_corrupted_arrays(tmp_path, "fog", 1)


def test_load_corrupted_arrays_bad_contents(tmp_path):
    _write_c_layout(tmp_path)
    np.save(tmp_path / "fog.npy", np.zeros((7, 32, 32, 3), dtype=np.uint8))  # not 5 severities
    with pytest.raises(ValueError, match="fog.npy"):
        load_corrupted_arrays(tmp_path, "fog", 1)
    np.save(tmp_path / "fog.npy", np.zeros((15, 32, 32), dtype=np.uint8))  # no channel axis
    with pytest.raises(ValueError, match="fog.npy"):
        load_corrupted_arrays(tmp_path, "fog", 1)
    np.save(tmp_path / "fog.npy", np.zeros((15, 32, 32, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="fog.npy"):
        load_corrupted_arrays(tmp_path, "fog", 1)
    np.save(tmp_path / "fog.npy", np.zeros((15, 32, 32, 3), dtype=np.uint8))
    np.save(tmp_path / "labels.npy", np.zeros(10, dtype=np.uint8))
    with pytest.raises(ValueError, match="labels.npy"):
        load_corrupted_arrays(tmp_path, "fog", 1)
    with pytest.raises(ValueError, match="severity"):
        load_corrupted_arrays(tmp_path, "fog", 6)
    with pytest.raises(ValueError, match="name"):
        load_corrupted_arrays(tmp_path, "haze", 1)


# ------------------------------------------------------------------------------------ CUDA
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ALL)
def test_cuda(name):
    images = torch.round(scene(2, 3, 32, 32) * 255).to(torch.uint8)
    out = corrupt(images.cuda(), name, 4, generator=torch.Generator(device="cuda").manual_seed(0))
    assert out.device.type == "cuda" and out.dtype == torch.uint8 and out.shape == images.shape
    # a CPU generator with CUDA images gives the CPU result
    on_cpu = corrupt(images, name, 4, generator=torch.Generator().manual_seed(0))
    mixed = corrupt(images.cuda(), name, 4, generator=torch.Generator().manual_seed(0)).cpu()
    assert (mixed.int() - on_cpu.int()).abs().float().mean() < 0.5
