"""CIFAR-10 / CIFAR-100 as transfer targets, from either copy ssl_zoo already reads:

* the official python archive (``cifar-10-batches-py`` / ``cifar-100-python`` under the datasets
  root), read by torchvision's ``CIFAR10`` / ``CIFAR100`` (they are right: labels in the
  archive's order);
* an ImageFolder copy ``cifar10/{train,test}/<class>/*`` (as ``../shared/data``): listed, not
  decoded, so only the images a run needs are read.

Splits "train" (50,000) and "test" (10,000); the validation split is held out from train.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image
from torchvision.datasets import CIFAR10, CIFAR100
from torchvision.datasets.folder import IMG_EXTENSIONS

from ssl_zoo.data.readers.records import SplitRecords, require

__all__ = ["read_cifar"]


def _from_archive(root: str, num_classes: int) -> SplitRecords:
    cls = CIFAR10 if num_classes == 10 else CIFAR100
    parts = {s: cls(root, train=(s == "train"), download=False) for s in ("train", "test")}
    arrays = {s: np.ascontiguousarray(ds.data) for s, ds in parts.items()}  # [N, 32, 32, 3] uint8

    def load(image_id: str) -> Image.Image:
        split, i = image_id.split("/")
        return Image.fromarray(arrays[split][int(i)])

    splits = {s: [(f"{s}/{i}", int(t)) for i, t in enumerate(ds.targets)] for s, ds in parts.items()}
    return SplitRecords(f"cifar{num_classes}", root, list(parts["train"].classes), splits, loader=load)


def _from_folder(root: str, num_classes: int) -> SplitRecords:
    base = os.path.join(root, f"cifar{num_classes}")
    classes = sorted(d for d in os.listdir(os.path.join(base, "train")) if os.path.isdir(os.path.join(base, "train", d)))
    splits = {}
    for split in ("train", "test"):
        folder = require(os.path.join(base, split), f"CIFAR-{num_classes}", "expected an ImageFolder copy")
        rows = []
        for label, c in enumerate(classes):
            files = sorted(f for f in os.listdir(os.path.join(folder, c)) if f.lower().endswith(IMG_EXTENSIONS))
            rows += [(f"{split}/{c}/{f}", label) for f in files]
        splits[split] = rows
    return SplitRecords(f"cifar{num_classes}", base, classes, splits)


def read_cifar(root: str, num_classes: int = 10) -> SplitRecords:
    """CIFAR-``num_classes`` under the datasets root ``root`` (archive preferred over a folder copy)."""
    if num_classes not in (10, 100):
        raise ValueError(f"CIFAR has 10 or 100 classes, got {num_classes}")
    archive = "cifar-10-batches-py" if num_classes == 10 else "cifar-100-python"
    if os.path.isdir(os.path.join(root, archive)):
        return _from_archive(root, num_classes)
    if os.path.isdir(os.path.join(root, f"cifar{num_classes}", "train")):
        return _from_folder(root, num_classes)
    raise FileNotFoundError(f"CIFAR-{num_classes}: neither {os.path.join(root, archive)} (the official python "
                            f"archive, extracted) nor {os.path.join(root, f'cifar{num_classes}', 'train')} "
                            f"(ImageFolder copy with train/ and test/) exists")
