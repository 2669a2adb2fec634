"""Reader for image class folders: spec ``folder:DIR`` with ``DIR/<class>/<image files>``.

If ``DIR/train`` and ``DIR/test`` (else ``DIR/val``) exist they are the splits (classes come from train; a
test class absent from train is an error); if ``DIR`` holds only ``train`` it is split stratified;
otherwise ``DIR``'s subfolders are the classes and are split stratified. Files whose extension Pillow
knows are images and must be readable; hidden files and files with any other extension are ignored.
Images load as RGB, or as one-channel L when every image of the dataset is grayscale; images of more
than 8 bits (16-bit PNG or TIFF, modes ``I;16*`` and ``I``; float ``F`` in 0..1) are scaled by their bit
depth to 0..255 (:func:`~supcon.data.decode.eight_bit`), and ones whose range is unknown (``I`` outside
0..65535, ``F`` outside 0..1) fail like unreadable files. Size rule: every image's shorter side is
resized (bilinear) to ``S`` and the centre ``S x S`` is cropped, where ``S`` is ``image_size`` if given,
else the most common shorter side across the whole dataset (ties: the larger); when that changes any
image a warning states ``S``. The dataset's ``paths`` hold each image's path relative to ``DIR``.

Speed: the first load reads the headers and decodes the images on every core
(:class:`~supcon.data.decode.ImageDecoder`; the output is the serial decode's, in the same order) and
stores every part of the dataset in the on-disk cache (:mod:`supcon.data.cache`: ``$SUPCON_CACHE_DIR``,
else ``$XDG_CACHE_HOME/supcon`` or ``~/.cache/supcon``; ``SUPCON_CACHE_DIR=off`` disables it). Entries
(:mod:`supcon.data.folder_cache`) are per part (``train``/``test``, or ``all`` for a stratified folder,
so any seed or test fraction reuses it) and ``image_size``, and are keyed by the relative path, class,
size and modification time of every image file, so adding, removing, replacing or touching a file
rebuilds them. Without the cache only the requested split is decoded.

Bad files: every unreadable image (corrupt, truncated, or of unknown pixel range) is found before
failing, and the error names them all (the first ``_MAX_NAMED``, then how many more). With
``skip_bad_images`` they are left out instead, with a warning giving their count; nothing is cached by a
load that fails.
"""

from __future__ import annotations

import collections
import logging
from pathlib import Path

import numpy as np

from supcon.data.base import DatasetError, ImageDataset, ReadRequest, _make_dataset
from supcon.data.cache import cache_root, discard_warning, read_entry
from supcon.data.decode import GRAY_MODES, ImageDecoder, ImageHeader
from supcon.data.folder_cache import DecodedPart, cached_part, entry_name, folder_fingerprint, store_part
from supcon.data.folder_files import FolderLayout, file_path, scan_folder
from supcon.data.footprint import check_fits_in_memory
from supcon.data.stratified import _stratified_indices

logger = logging.getLogger(__name__)

# Unreadable files named in an error or warning before "and N more".
_MAX_NAMED = 20


def read_folder(root: Path, request: ReadRequest) -> ImageDataset:
    """One split of the class folders under ``root``, as ``(N, C, S, S)`` uint8 (cached; see the module)."""
    if not root.is_dir():
        raise DatasetError(f"folder: {root} is not a directory")
    layout = scan_folder(root)
    part, wanted = _requested_part(layout, request)
    decoded = _decoded_part(layout, part, wanted, request)
    _check_bad_files(layout, part, wanted, decoded.bad, request)
    if decoded.resized:
        side = decoded.images.shape[-1]
        logger.warning(
            "folder %s: images differ in size or are not square; resizing every image's shorter side to "
            "%d and centre-cropping to %dx%d (the most common shorter side; pass image_size to choose)",
            root, side, side, side,
        )
    keep = np.ones(len(decoded.rows), dtype=bool) if wanted is None else np.isin(decoded.rows, wanted)
    rows = decoded.rows[keep]
    images = decoded.images if keep.all() else decoded.images[keep]
    files = layout.parts[part]
    return _make_dataset(images, files.labels[rows], layout.classes, root.name, [files.rel[i] for i in rows])


def _requested_part(layout: FolderLayout, request: ReadRequest) -> tuple[str, np.ndarray | None]:
    """The part holding ``request.split`` and the split's sorted indices in it (``None``: the whole part)."""
    if layout.stratified_root is None:
        return request.split, None
    index = _stratified_indices(
        layout.parts["all"].labels, request.split, request.seed, request.test_fraction, str(layout.stratified_root)
    )
    return "all", index


def _decoded_part(layout: FolderLayout, part: str, wanted: np.ndarray | None, request: ReadRequest) -> DecodedPart:
    """The part's decoded images: from the cache when it holds them, else decoded.

    Without a cache only ``wanted`` is decoded. With one, a miss decodes every part of the dataset and
    caches each (one header pass serves them all, and the other split's load is then a hit).
    """
    folder = cache_root()
    if folder is None:
        return _decode(layout, {part: wanted}, request.image_size)[part]
    paths = {p: folder / "folder" / entry_name(layout, p, request.image_size) for p in layout.parts}
    key = folder_fingerprint(layout, request.image_size)
    entry = read_entry(paths[part], key)
    if entry is not None:
        decoded, problem = cached_part(entry, layout, part, request.image_size)
        if decoded is not None:
            return decoded
        discard_warning(paths[part], problem)
    every_part = _decode(layout, dict.fromkeys(layout.parts), request.image_size)
    if not every_part[part].bad or request.skip_bad_images:  # a load about to fail caches nothing
        for name, decoded in every_part.items():
            store_part(paths[name], key, layout, name, decoded)
    return every_part[part]


def _decode(
    layout: FolderLayout, wanted: dict[str, np.ndarray | None], image_size: int | None
) -> dict[str, DecodedPart]:
    """Read every header of the dataset (for mode and size), then decode ``wanted[part]`` (all if None).

    Every part's :attr:`~supcon.data.folder_cache.DecodedPart.bad` lists all unreadable files found, in any part.
    """
    every = [rel for files in layout.parts.values() for rel in files.rel]
    with ImageDecoder() as decoder:
        headers, header_failures = decoder.headers([file_path(layout.root, rel) for rel in every])
        bad = {every[k]: message for k, message in header_failures}
        readable = [h for h in headers if h is not None]
        if not readable:
            raise DatasetError(f"folder {layout.root}: no readable image files:\n{_name_files(bad)}")
        gray, side, resized = _mode_and_side(readable, image_size)
        mode = "L" if gray else "RGB"
        count = sum(len(layout.parts[part]) if index is None else len(index) for part, index in wanted.items())
        check_fits_in_memory(count, 1 if gray else 3, side, f"folder {layout.root}")
        pixels = {
            part: _decode_files(decoder, layout, part, index, bad, mode, side) for part, index in wanted.items()
        }
    every_bad = sorted(bad.items())
    return {part: DecodedPart(images, rows, every_bad, resized) for part, (images, rows) in pixels.items()}


def _decode_files(
    decoder: ImageDecoder,
    layout: FolderLayout,
    part: str,
    index: np.ndarray | None,
    bad: dict[str, str],
    mode: str,
    side: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``(images, rows)`` of the readable files ``index`` of ``part`` (all if None); adds failures to ``bad``."""
    files = layout.parts[part]
    candidates = range(len(files)) if index is None else index.tolist()
    rows = np.array([i for i in candidates if files.rel[i] not in bad], dtype=np.int64)
    images, failures = decoder.decode([file_path(layout.root, files.rel[i]) for i in rows], mode, side)
    if not failures:
        return images, rows
    failed = np.zeros(len(rows), dtype=bool)
    failed[[i for i, _ in failures]] = True
    bad.update((files.rel[rows[i]], message) for i, message in failures)
    return images[~failed], rows[~failed]


def _mode_and_side(headers: list[ImageHeader], image_size: int | None) -> tuple[bool, int, bool]:
    """Whether every image is grayscale, the output side ``S`` (the module's size rule) and if it resizes any."""
    gray = all(mode in GRAY_MODES for _, mode in headers)
    if image_size is not None:
        return gray, image_size, False
    counts = collections.Counter(min(size) for size, _ in headers)
    side = max(counts, key=lambda s: (counts[s], s))
    return gray, side, any(size != (side, side) for size, _ in headers)


def _check_bad_files(
    layout: FolderLayout, part: str, wanted: np.ndarray | None, bad: list[tuple[str, str]], request: ReadRequest
) -> None:
    """Fail naming every unreadable file, or (``skip_bad_images``) warn how many of this split are left out."""
    if not bad:
        return
    if not request.skip_bad_images:
        raise DatasetError(
            f"folder {layout.root}: {len(bad)} unreadable image file(s) (corrupt, truncated or of unknown "
            f"pixel range; pass skip_bad_images=True or --skip-bad-images to leave them out):\n"
            f"{_name_files(dict(bad))}"
        )
    files = layout.parts[part]
    in_split = set(files.rel) if wanted is None else {files.rel[i] for i in wanted}
    skipped = {rel: message for rel, message in bad if rel in in_split}
    if skipped:
        logger.warning(
            "folder %s: skipped %d unreadable image file(s) of the %s split (skip_bad_images):\n%s",
            layout.root, len(skipped), request.split, _name_files(skipped),
        )


def _name_files(bad: dict[str, str]) -> str:
    """One line per unreadable file (its message), the first ``_MAX_NAMED``, then ``... and N more``."""
    lines = [f"  {message}" for message in list(bad.values())[:_MAX_NAMED]]
    if len(bad) > _MAX_NAMED:
        lines.append(f"  ... and {len(bad) - _MAX_NAMED} more")
    return "\n".join(lines)
