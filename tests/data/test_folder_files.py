"""Tests for supcon.data.folder_files: which files of a folder dataset are images, of which class, in which part."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_files import noise, save_image
from supcon.data import DatasetError
from supcon.data.folder_files import file_path, scan_folder


def _reference_listing(class_dir: Path) -> list[Path]:
    """The listing rule as first written: sorted rglob, regular image files, no hidden part."""
    Image.init()
    extensions = {ext.lower() for ext in Image.registered_extensions()}
    return [
        p
        for p in sorted(class_dir.rglob("*"))
        if p.is_file()
        and p.suffix.lower() in extensions
        and not any(part.startswith(".") for part in p.relative_to(class_dir).parts)
    ]


def test_listing_matches_the_rglob_rule(tmp_path):
    root = tmp_path / "data"
    names = ["b.png", "a.PNG", "a-b.png", "a/b.png", "a/c/d.jpg", "z.jpeg", "x.", "noext", "notes.txt",
             ".hidden.png", ".dir/e.png", "sub/.f.png", "sub/g.png", "sub.png", "sub-x/h.png", "é.png"]
    for name in names:
        path = root / "cls" / name
        if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
            save_image(path, noise(2, 2, 0), "PNG")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("not an image")
    save_image(tmp_path / "outside" / "linked.png", noise(2, 2, 1))
    os.symlink(tmp_path / "outside" / "linked.png", root / "cls" / "link.png")
    os.symlink(tmp_path / "outside", root / "cls" / "linked_dir")  # folders behind links are not entered
    os.symlink(tmp_path / "nowhere.png", root / "cls" / "dangling.png")
    save_image(root / "other" / "0.png", noise(2, 2, 2))
    layout = scan_folder(root)
    assert layout.classes == ["cls", "other"] and list(layout.parts) == ["all"]
    assert layout.stratified_root == root
    files = layout.parts["all"]
    assert files.labels.tolist() == [0] * (len(files) - 1) + [1] and files.rel[-1] == "other/0.png"
    listed = [Path(file_path(root, rel)) for rel in files.rel[:-1]]
    assert listed == _reference_listing(root / "cls")
    # Sorted part by part (as Path objects sort), not as strings: "a/b.png" comes before "a-b.png".
    assert files.rel[:4] == ["cls/a/b.png", "cls/a/c/d.jpg", "cls/a-b.png", "cls/a.PNG"]
    linked = files.rel.index("cls/link.png")
    target = (tmp_path / "outside" / "linked.png").stat()
    assert (files.size[linked], files.mtime_ns[linked]) == (target.st_size, target.st_mtime_ns)
    assert files.size.dtype == files.mtime_ns.dtype == files.labels.dtype == np.int64


def test_parts_of_each_layout(tmp_path):
    save_image(tmp_path / "flat" / "a" / "0.png", noise(2, 2, 0))
    save_image(tmp_path / "only" / "train" / "a" / "0.png", noise(2, 2, 0))
    for split in ("train", "val"):
        save_image(tmp_path / "both" / split / "a" / "0.png", noise(2, 2, 0))
        save_image(tmp_path / "both" / split / "b" / "1.png", noise(2, 2, 0))
    assert scan_folder(tmp_path / "flat").parts["all"].rel == ["a/0.png"]
    only = scan_folder(tmp_path / "only")
    assert only.stratified_root == tmp_path / "only" / "train" and only.parts["all"].rel == ["train/a/0.png"]
    both = scan_folder(tmp_path / "both")
    assert both.stratified_root is None and list(both.parts) == ["train", "test"]
    assert both.parts["test"].rel == ["val/a/0.png", "val/b/1.png"]
    assert both.parts["test"].labels.tolist() == [0, 1] and both.classes == ["a", "b"]
    (tmp_path / "flat" / "b").mkdir()
    with pytest.raises(DatasetError, match="holds no image files"):
        scan_folder(tmp_path / "flat")
