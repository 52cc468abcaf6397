"""Every image under a folder, without labels: pretraining on your own images.

``build_dataset`` (:mod:`ssl_zoo.data.catalog`) takes a directory either as an ImageFolder
(``root/<class>/<image>``, labelled) or as an :class:`UnlabeledFolderDataset`. The rule
(:func:`folder_layout`, ``DATASETS.FOLDER_LABELS "auto"``):

* **class folders** when no image sits directly in ``root`` and every image (at least one) sits
  exactly one level down, in a sub-folder of ``root`` (torchvision's ImageFolder layout);
* **unlabeled** otherwise: images directly in ``root`` (a flat folder) or deeper than one level
  (``root/2021/06/x.jpg``), or a mix. Every image under ``root`` is used, recursively.

``DATASETS.FOLDER_LABELS "none"`` forces the unlabeled reading (e.g. ``photos/<year>/*.jpg``,
whose year folders are not classes); ``"class_folders"`` forces ImageFolder.
"""
from __future__ import annotations

import logging
import os
from typing import Callable, Iterator, List, Optional

from torchvision.datasets.folder import IMG_EXTENSIONS

from ssl_zoo.data.datasets.base import FileImageDataset, require_dir

__all__ = ["FOLDER_LABELS", "UnlabeledFolderDataset", "find_images", "folder_layout", "is_image_file"]

logger = logging.getLogger(__name__)

FOLDER_LABELS = ("auto", "class_folders", "none")


def is_image_file(name: str) -> bool:
    """An image by extension (torchvision's ``IMG_EXTENSIONS``, case-insensitive), not a hidden file."""
    return not name.startswith(".") and name.lower().endswith(IMG_EXTENSIONS)


def _walk(root: str) -> Iterator[str]:
    """Image paths under ``root`` in sorted order; hidden folders skipped; a folder reached twice
    through links (a symlink loop) is visited once."""
    seen = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if is_image_file(name):
                yield os.path.join(folder, name)


def find_images(root: str) -> List[str]:
    """Every image file under ``root``, recursively, sorted; each real file once."""
    out, seen = [], set()
    for path in _walk(root):
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            out.append(path)
    return out


def folder_layout(root: str) -> str:
    """``"class_folders"`` or ``"unlabeled"`` by the rule of this module's docstring.

    Cheap: stops at the first image found directly in ``root`` or two levels down.
    """
    subdirs = []
    with os.scandir(root) as entries:
        for e in entries:
            if e.name.startswith("."):
                continue
            if e.is_dir():
                subdirs.append(e.path)
            elif is_image_file(e.name):
                return "unlabeled"  # an image at the top level
    one_level_down = False
    for sub in subdirs:
        with os.scandir(sub) as entries:
            found = list(entries)
        deeper = [e.path for e in found if e.is_dir() and not e.name.startswith(".")]
        if any(next(_walk(d), None) is not None for d in deeper):
            return "unlabeled"  # an image nested deeper than one level
        one_level_down = one_level_down or any(e.is_file() and is_image_file(e.name) for e in found)
    return "class_folders" if one_level_down else "unlabeled"  # no image at all: the unlabeled reader says so


class UnlabeledFolderDataset(FileImageDataset):
    """Every image under ``root`` (recursively), target -1, no classes.

    Args:
        root: the folder.
        transform: callable applied to the RGB PIL image.
        corrupt_policy: "fail" or "skip" (see :class:`~ssl_zoo.data.datasets.base.FileImageDataset`):
            under "skip" every file is test-decoded once and unreadable ones are dropped.
        num_check_threads: threads for the "skip" scan.

    Attributes:
        num_found: image files found (by extension) before unreadable ones were dropped.
        corrupt_files: the files skipped as unreadable.

    ``dataset[i] -> (transform(PIL image), -1)``.

    Raises:
        FileNotFoundError: ``root`` is not a directory.
        ValueError: no image file under ``root``.
    """

    def __init__(self, root: str, transform: Optional[Callable] = None, corrupt_policy: str = "fail",
                 num_check_threads: Optional[int] = None) -> None:
        self.root = os.path.abspath(require_dir(root, "image folder"))
        paths = find_images(self.root)
        if not paths:
            raise ValueError(f"No image files under {self.root} (looked recursively for "
                             f"{', '.join(IMG_EXTENSIONS)}).")
        self.num_found = len(paths)
        self.classes, self.class_to_idx = [], {}
        self._set_samples([(p, -1) for p in paths])
        self.transform = transform
        self._apply_corrupt_policy(corrupt_policy, num_check_threads)

    def __repr__(self) -> str:
        return f"UnlabeledFolderDataset({self.root}, n={len(self)})"
