"""A user's own dataset for transfer: an ImageFolder tree with ``train/`` and ``test/``::

    <root>/train/<class>/<image>      <root>/test/<class>/<image>      [<root>/val/<class>/<image>]

Classes are the sorted folder names of ``train/`` (torchvision's ImageFolder order). Without
``val/`` the validation split is held out per class from train by the transfer task.
"""
from __future__ import annotations

import os

from torchvision.datasets.folder import IMG_EXTENSIONS

from ssl_zoo.data.readers.records import SplitRecords, require

__all__ = ["read_image_folder_splits"]

HINT = "expected an ImageFolder tree <root>/train/<class>/<image> and <root>/test/<class>/<image>"


def read_image_folder_splits(root: str) -> SplitRecords:
    """Splits "train", "test" (and "val" when present) of the ImageFolder tree at ``root``."""
    train = require(os.path.join(root, "train"), "ImageFolder", HINT)
    require(os.path.join(root, "test"), "ImageFolder", HINT)
    classes = sorted(d for d in os.listdir(train) if os.path.isdir(os.path.join(train, d)))
    if not classes:
        raise FileNotFoundError(f"ImageFolder: no class folders in {train}; {HINT}")
    index = {c: i for i, c in enumerate(classes)}
    splits = {}
    for split in ("train", "val", "test"):
        folder = os.path.join(root, split)
        if not os.path.isdir(folder):
            continue
        extra = sorted(set(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d))) - set(index))
        if extra:
            raise ValueError(f"{folder}: classes {extra[:5]} have no folder in {train}")
        rows = []
        for c in classes:
            d = os.path.join(folder, c)
            if os.path.isdir(d):
                rows += [(f"{split}/{c}/{f}", index[c]) for f in sorted(os.listdir(d)) if f.lower().endswith(IMG_EXTENSIONS)]
        if not rows:
            raise FileNotFoundError(f"ImageFolder: no images under {folder}; {HINT}")
        splits[split] = rows
    return SplitRecords(os.path.basename(os.path.normpath(root)), root, classes, splits)
