"""Caltech-101 (Fei-Fei et al. 2004) with its 102 folders, ``BACKGROUND_Google`` included::

    <root>/101_ObjectCategories/<class>/image_NNNN.jpg      9,144 images, 102 folders

The paper's protocol counts 102 classes (PROTOCOLS.md s.5); torchvision's ``Caltech101`` drops
``BACKGROUND_Google`` and returns grayscale images as "L", so it is not used. Images are always
converted to RGB. No official split: 30 per class are drawn without replacement (25 train +
5 val), the rest is test (``ssl_zoo.benchmark.transfer.splits``).
"""
from __future__ import annotations

import os

from torchvision.datasets.folder import IMG_EXTENSIONS

from ssl_zoo.data.readers.records import SplitRecords, require

__all__ = ["read_caltech101"]

HINT = ("download caltech-101.zip (data.caltech.edu/records/mzrjq-6wc02) and extract 101_ObjectCategories.tar.gz "
        "so that <root>/101_ObjectCategories/BACKGROUND_Google exists")


def read_caltech101(root: str) -> SplitRecords:
    """One split "all" (every image of the 102 folders) at ``root``."""
    base = require(os.path.join(root, "101_ObjectCategories"), "Caltech-101", HINT)
    classes = sorted(d for d in os.listdir(base) if os.path.isdir(os.path.join(base, d)))
    rows = []
    for label, c in enumerate(classes):
        files = sorted(f for f in os.listdir(os.path.join(base, c)) if f.lower().endswith(IMG_EXTENSIONS))
        rows += [(f"101_ObjectCategories/{c}/{f}", label) for f in files]
    return SplitRecords("caltech101", root, classes, {"all": rows})
