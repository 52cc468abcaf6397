"""SUN397 (Xiao et al. 2010) with the official partition 1 (PROTOCOLS.md s.5: "SUN397 (split 1)")::

    <root>/SUN397/<letter>/<class>[/<sub>]/sun_*.jpg     SUN397.tar.gz (108,754 images)
    <root>/Partitions/ClassName.txt                     "/a/abbey" ... (397 lines, label order)
    <root>/Partitions/Training_01.txt, Testing_01.txt   "/a/abbey/sun_aaa....jpg": 50 per class each

torchvision's ``SUN397`` globs every image and has no partitions, so it cannot give split 1.
Some ".jpg" files are not JPEG; PIL opens them by content.
"""
from __future__ import annotations

import os

from ssl_zoo.data.readers.records import SplitRecords, read_lines, require

__all__ = ["read_sun397"]

HINT = ("extract SUN397.tar.gz into <root>/SUN397 and the official Partitions.zip "
        "(vision.princeton.edu/projects/2010/SUN/download/Partitions.zip) into <root>/Partitions")


def read_sun397(root: str, partition: int = 1) -> SplitRecords:
    """Splits "train" (Training_NN, 19,850) and "test" (Testing_NN, 19,850) of ``partition``."""
    parts = require(os.path.join(root, "Partitions"), "SUN397", HINT)
    images = require(os.path.join(root, "SUN397"), "SUN397", HINT)
    names = read_lines(require(os.path.join(parts, "ClassName.txt"), "SUN397", HINT))
    index = {n.strip("/"): i for i, n in enumerate(names)}
    splits = {}
    for split, stem in (("train", "Training"), ("test", "Testing")):
        path = require(os.path.join(parts, f"{stem}_{partition:02d}.txt"), "SUN397", HINT)
        rows = []
        for line in read_lines(path):
            cls = os.path.dirname(line).strip("/")
            if cls not in index:
                raise ValueError(f"{path}: class '{cls}' of {line} is not in ClassName.txt")
            rows.append((os.path.relpath(os.path.join(images, line.lstrip("/")), root), index[cls]))
        splits[split] = rows
    classes = [n.strip("/") for n in names]
    return SplitRecords("sun397", root, classes, splits)
