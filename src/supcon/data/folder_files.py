"""The image files of a folder dataset (``folder:DIR``): which files, of which class, in which part.

:func:`scan_folder` lists ``DIR`` once, with one ``scandir`` pass and one ``stat`` per file (the sizes and
modification times key the decode cache). If ``DIR/train`` and ``DIR/test`` (else ``DIR/val``) exist they
are the parts ``train`` and ``test`` (classes come from train; a test class absent from train is an
error); if ``DIR`` holds only ``train``, or otherwise ``DIR`` itself, its class folders are the one part
``all``, to be split stratified. A class folder's image files are those, at any depth, whose extension
Pillow knows, in sorted path order; hidden files and folders and other extensions are ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from supcon.data.base import DatasetError


@dataclass(frozen=True)
class FolderPart:
    """The image files of one part, in listing order, as columns (one entry per file).

    Attributes:
        rel: paths relative to the dataset root, ``"/"``-separated.
        labels: ``(n,)`` int64 class indices (into :attr:`FolderLayout.classes`).
        size: ``(n,)`` int64 file sizes in bytes.
        mtime_ns: ``(n,)`` int64 modification times in nanoseconds.
    """

    rel: list[str]
    labels: np.ndarray
    size: np.ndarray
    mtime_ns: np.ndarray

    def __len__(self) -> int:
        return len(self.rel)


@dataclass(frozen=True)
class FolderLayout:
    """The image files of a folder dataset, grouped in parts: ``train`` and ``test``, or ``all``.

    ``stratified_root`` is the folder whose classes are split stratified (part ``all``), or ``None``
    when the dataset has its own train and test folders.
    """

    root: Path
    classes: list[str]
    parts: dict[str, FolderPart]
    stratified_root: Path | None


def scan_folder(root: Path) -> FolderLayout:
    """List the dataset's image files (with sizes and modification times) and group them in parts."""
    train_dir = root / "train"
    test_dir = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
    if train_dir.is_dir() and test_dir is not None:
        train_files = _class_tree(root, train_dir)
        test_files = _class_tree(root, test_dir)
        classes = list(train_files)
        unknown = sorted(set(test_files) - set(classes))
        if unknown:
            raise DatasetError(
                f"folder: test class folder(s) {unknown} in {test_dir} have no counterpart in {train_dir} "
                f"(train classes: {classes})"
            )
        parts = {"train": _part(train_files, classes), "test": _part(test_files, classes)}
        return FolderLayout(root, classes, parts, None)
    class_root = train_dir if [d.name for d in _visible_subdirs(root)] == ["train"] else root
    files = _class_tree(root, class_root)
    return FolderLayout(root, list(files), {"all": _part(files, list(files))}, class_root)


def file_path(root: Path, rel: str) -> str:
    """The path of the image file ``rel`` (an entry of :attr:`FolderPart.rel`) of the dataset at ``root``."""
    return os.path.join(root, rel)


def _image_extensions() -> frozenset[str]:
    Image.init()
    return frozenset(ext.lower() for ext in Image.registered_extensions())


def _visible_subdirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


#: ``(relative path, size, mtime_ns)`` of one image file.
_Found = tuple[str, int, int]


def _class_tree(root: Path, split_root: Path) -> dict[str, list[_Found]]:
    """The image files of each class folder (sorted by name) of a ``split_root/<class>/`` tree."""
    class_dirs = _visible_subdirs(split_root)
    if not class_dirs:
        raise DatasetError(
            f"folder: {split_root} has no class folders (expected {split_root}/<class>/<images>)"
        )
    extensions = _image_extensions()
    prefix = "".join(f"{p}/" for p in split_root.relative_to(root).parts)
    tree = {}
    for class_dir in class_dirs:
        found: list[_Found] = []
        _image_files(str(class_dir), f"{prefix}{class_dir.name}/", extensions, found)
        if not found:
            raise DatasetError(f"folder: class folder {class_dir} holds no image files")
        tree[class_dir.name] = found
    return tree


def _part(tree: dict[str, list[_Found]], classes: list[str]) -> FolderPart:
    """The files of ``tree``, class by class, as columns; labels index ``classes``."""
    index = {name: k for k, name in enumerate(classes)}
    rel, size, mtime_ns = [], [], []
    labels = np.concatenate([np.full(len(files), index[name], dtype=np.int64) for name, files in tree.items()])
    for files in tree.values():
        for path, nbytes, mtime in files:
            rel.append(path)
            size.append(nbytes)
            mtime_ns.append(mtime)
    return FolderPart(rel, labels, np.array(size, dtype=np.int64), np.array(mtime_ns, dtype=np.int64))


def _image_files(folder: str, prefix: str, extensions: frozenset[str], found: list[_Found]) -> None:
    """Append ``(prefix + path below folder, size, mtime_ns)`` of every image file below ``folder`` to ``found``.

    The same files in the same order as ``sorted(class_dir.rglob("*"))`` filtered to regular files
    (symlinks followed) with an image extension and no hidden part: a depth-first walk visiting each
    folder's entries sorted by name is exactly that order (paths sort part by part). One ``scandir``
    per folder and one ``stat`` per image file; hidden entries are skipped, symlinked folders are not
    entered and unreadable folders are ignored, as ``rglob`` does.
    """
    try:
        entries = sorted(os.scandir(folder), key=_entry_name)
    except PermissionError:
        return
    for entry in entries:
        name = entry.name
        if name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            _image_files(entry.path, f"{prefix}{name}/", extensions, found)
            continue
        dot = name.rfind(".")  # pathlib's suffix rule: the last dot, not first or last character
        if 0 < dot < len(name) - 1 and name[dot:].lower() in extensions and entry.is_file():
            info = entry.stat()
            found.append((prefix + name, info.st_size, info.st_mtime_ns))


def _entry_name(entry: os.DirEntry) -> str:
    return entry.name
