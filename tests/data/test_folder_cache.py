"""Tests for the decode cache of folder datasets (supcon.data.folder_cache with supcon.data.cache)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil

import pytest
import torch

from dataset_files import corrupt_png, noise, rgb, save_image, truncated_jpeg, write_image_tree
from supcon.data import DatasetError, load_dataset
from supcon.data import folder as folder_module
from supcon.data.cache import CACHE_DIR_ENV
from supcon.data.decode import ImageDecoder


@pytest.fixture
def decodes(monkeypatch):
    """Counts the folder reader's decodes (each load that misses the cache makes one decoder)."""
    made = []

    def counting_decoder(*args, **kwargs):
        made.append(1)
        return ImageDecoder(*args, **kwargs)

    monkeypatch.setattr(folder_module, "ImageDecoder", counting_decoder)
    return made


def _split_tree(root):
    write_image_tree(root / "train", per_class=6)
    write_image_tree(root / "test", per_class=2)
    return root


def _load_both(root, **kwargs):
    return [load_dataset(f"folder:{root}", split, **kwargs) for split in ("train", "test")]


def _assert_same(loads, expected):
    for got, want in zip(loads, expected):
        assert torch.equal(got.images, want.images) and torch.equal(got.labels, want.labels)
        assert got.classes == want.classes and got.name == want.name


def _uncached(monkeypatch, root, **kwargs):
    with monkeypatch.context() as patch:
        patch.setenv(CACHE_DIR_ENV, "off")
        return _load_both(root, **kwargs)


def _entries(cache_dir):
    return sorted(p.name for p in cache_dir.rglob("*") if p.is_file())


def _warnings(caplog, word):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and word in r.getMessage()]


def test_second_load_is_served_from_the_cache(tmp_path, monkeypatch, private_cache_dir, decodes):
    root = _split_tree(tmp_path / "data")
    expected = _uncached(monkeypatch, root)
    decodes.clear()
    _assert_same(_load_both(root), expected)
    assert len(decodes) == 1  # the train load decoded both splits; the test load was a hit
    names = _entries(private_cache_dir)
    assert len(names) == 2 and all(n.endswith(".npz") for n in names)
    assert any("-train-" in n for n in names) and any("-test-" in n for n in names)
    _assert_same(_load_both(root), expected)
    assert len(decodes) == 1
    _load_both(root, image_size=6)  # another size is another entry
    assert len(decodes) == 2 and len(_entries(private_cache_dir)) == 4


def test_stratified_folder_caches_every_split_and_seed(tmp_path, monkeypatch, decodes):
    root = write_image_tree(tmp_path / "data")
    expected = {seed: _uncached(monkeypatch, root, seed=seed, test_fraction=0.25) for seed in (0, 1)}
    decodes.clear()
    for seed in (0, 1, 0):
        _assert_same(_load_both(root, seed=seed, test_fraction=0.25), expected[seed])
    assert len(decodes) == 1


def test_warm_load_repeats_the_resize_warning(tmp_path, caplog):
    root = write_image_tree(tmp_path / "data")
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="supcon.data.folder"):
            load_dataset(f"folder:{root}", "train")
        assert len(_warnings(caplog, "centre-cropping to 8x8")) == 1


@pytest.mark.parametrize("change", ["touch", "rewrite", "add", "remove"])
def test_changed_files_make_the_cache_stale(tmp_path, monkeypatch, caplog, decodes, change):
    root = _split_tree(tmp_path / "data")
    _load_both(root)
    target = root / "test" / "bee" / "00.png"
    if change == "touch":
        info = target.stat()
        os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    elif change == "rewrite":  # same name, new pixels
        save_image(target, rgb(8, 8, (1, 2, 3)))
    elif change == "add":
        save_image(root / "test" / "bee" / "new.png", noise(8, 8, 99))
    else:
        target.unlink()
    decodes.clear()
    with caplog.at_level(logging.WARNING, logger="supcon.data.cache"):
        loads = _load_both(root)
    assert len(decodes) == 1 and len(_warnings(caplog, "stale")) == 1
    _assert_same(loads, _uncached(monkeypatch, root))
    assert len(loads[1]) == {"add": 7, "remove": 5}.get(change, 6)
    if change == "rewrite":
        assert any(bool((img == torch.tensor([1, 2, 3])[:, None, None]).all()) for img in loads[1].images)
    decodes.clear()
    _load_both(root)
    assert not decodes  # rebuilt, and valid again


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other-split"])
def test_damaged_cache_file_is_ignored_and_rebuilt(tmp_path, monkeypatch, caplog, private_cache_dir, decodes,
                                                   damage):
    root = _split_tree(tmp_path / "data")
    expected = _uncached(monkeypatch, root)
    _load_both(root)
    entry = next(p for p in private_cache_dir.rglob("*-test-*.npz"))
    if damage == "truncate":
        entry.write_bytes(entry.read_bytes()[:1000])
    elif damage == "garbage":
        entry.write_bytes(b"\x00garbage" * 100)
    else:  # intact, same key, but the train split's files: caught by checking the file list
        shutil.copyfile(next(private_cache_dir.rglob("*-train-*.npz")), entry)
    decodes.clear()
    with caplog.at_level(logging.WARNING, logger="supcon.data"):
        _assert_same(_load_both(root), expected)
    assert len(decodes) == 1 and len(_warnings(caplog, "rebuilding")) == 1
    decodes.clear()
    _assert_same(_load_both(root), expected)
    assert not decodes


def _load_in_child(root, cache_dir, barrier, results):
    os.environ[CACHE_DIR_ENV] = str(cache_dir)
    barrier.wait()
    results.put([(d.images.numpy().tobytes(), d.labels.tolist()) for d in _load_both(root)])


def test_two_processes_filling_the_cache_at_once(tmp_path, monkeypatch, private_cache_dir, decodes):
    root = _split_tree(tmp_path / "data")
    expected = [(d.images.numpy().tobytes(), d.labels.tolist()) for d in _uncached(monkeypatch, root)]
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2), context.Queue()
    children = [context.Process(target=_load_in_child, args=(root, private_cache_dir, barrier, results))
                for _ in range(2)]
    for child in children:
        child.start()
    got = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    assert got == [expected, expected]
    assert len(_entries(private_cache_dir)) == 2  # no temporary files left behind
    decodes.clear()
    assert [(d.images.numpy().tobytes(), d.labels.tolist()) for d in _load_both(root)] == expected
    assert not decodes


def test_failed_load_caches_nothing_and_skipping_caches_the_bad_list(tmp_path, private_cache_dir, decodes):
    root = _split_tree(tmp_path / "data")
    broken = corrupt_png(root / "train" / "ant" / "broken.png")
    cut = truncated_jpeg(root / "test" / "cow" / "cut.jpg")
    for split in ("train", "test"):
        with pytest.raises(DatasetError, match="2 unreadable image file"):
            load_dataset(f"folder:{root}", split)
    assert _entries(private_cache_dir) == []
    train, test = _load_both(root, skip_bad_images=True)
    assert (len(train), len(test)) == (18, 6) and len(_entries(private_cache_dir)) == 2
    decodes.clear()
    with pytest.raises(DatasetError, match="2 unreadable image file") as caught:
        load_dataset(f"folder:{root}", "train")
    assert f"cannot read image {broken}" in str(caught.value) and f"cannot read image {cut}" in str(caught.value)
    assert [len(d) for d in _load_both(root, skip_bad_images=True)] == [18, 6]
    assert not decodes  # all of it answered by the cache


def test_cache_dir_variable_is_respected(tmp_path, monkeypatch, decodes):
    root = _split_tree(tmp_path / "data")
    home, xdg, chosen = tmp_path / "home", tmp_path / "xdg", tmp_path / "chosen"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    monkeypatch.setenv(CACHE_DIR_ENV, str(chosen))
    _load_both(root)
    assert len(_entries(chosen)) == 2 and not home.exists() and not xdg.exists()
    monkeypatch.setenv(CACHE_DIR_ENV, "off")
    decodes.clear()
    _load_both(root)
    _load_both(root)
    assert len(decodes) == 4 and not home.exists() and not xdg.exists() and len(_entries(chosen)) == 2
    monkeypatch.delenv(CACHE_DIR_ENV)
    _load_both(root)
    assert len(_entries(xdg / "supcon")) == 2


def test_unwritable_cache_only_warns(tmp_path, monkeypatch, caplog):
    root = _split_tree(tmp_path / "data")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(CACHE_DIR_ENV, str(blocker / "cache"))
    with caplog.at_level(logging.WARNING, logger="supcon.data.folder_cache"):
        loads = _load_both(root)
    _assert_same(loads, _uncached(monkeypatch, root))
    assert _warnings(caplog, "could not write cache file")


def test_entries_of_the_old_decode_rules_are_rebuilt(tmp_path, monkeypatch, decodes):
    """Entries written before 16-bit images were scaled (decode rules 1: clipped at 255) are not served."""
    import numpy as np
    from PIL import Image

    from supcon.data import decode as decode_module
    from supcon.data import folder_cache

    for name, value in (("dark", 0), ("mid", 30000)):
        for i in range(3):
            (tmp_path / "data" / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((4, 4), value, np.uint16)).save(tmp_path / "data" / name / f"{i}.png")
    root = tmp_path / "data"
    with monkeypatch.context() as old_rules:
        old_rules.setattr(folder_cache, "_DECODE_RULES_VERSION", 1)
        old_rules.setattr(decode_module, "eight_bit", lambda image: image)  # Pillow's clipping convert
        clipped = load_dataset(f"folder:{root}", "train", test_fraction=0.34)
    assert set(clipped.images[clipped.labels == 1].flatten().tolist()) == {255} and len(decodes) == 1
    scaled = load_dataset(f"folder:{root}", "train", test_fraction=0.34)
    assert len(decodes) == 2  # a miss: the old entry's key no longer matches
    assert set(scaled.images[scaled.labels == 1].flatten().tolist()) == {117}
