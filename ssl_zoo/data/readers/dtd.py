"""Describable Textures (Cimpoi et al. 2014), split 1 (PROTOCOLS.md s.5: "DTD (split 1)")::

    <root>/images/<class>/<class>_NNNN.jpg       47 classes x 120 images
    <root>/labels/{train,val,test}<k>.txt        "<class>/<file>.jpg", 1,880 each, k = 1..10
"""
from __future__ import annotations

import os

from ssl_zoo.data.readers.records import SplitRecords, read_lines, require

__all__ = ["read_dtd"]

HINT = "download dtd-r1.0.1.tar.gz (robots.ox.ac.uk/~vgg/data/dtd) and extract it so that <root>/labels/train1.txt exists"


def read_dtd(root: str, partition: int = 1) -> SplitRecords:
    """Splits "train", "val", "test" of ``partition`` at ``root`` (the dtd directory)."""
    images = require(os.path.join(root, "images"), "DTD", HINT)
    classes = sorted(d for d in os.listdir(images) if os.path.isdir(os.path.join(images, d)))
    index = {c: i for i, c in enumerate(classes)}
    splits = {}
    for split in ("train", "val", "test"):
        path = require(os.path.join(root, "labels", f"{split}{partition}.txt"), "DTD", HINT)
        rows = []
        for line in read_lines(path):
            cls = line.split("/")[0]
            if cls not in index:
                raise ValueError(f"{path}: class '{cls}' of {line} has no folder in {images}")
            rows.append((f"images/{line}", index[cls]))
        splits[split] = rows
    return SplitRecords("dtd", root, classes, splits)
