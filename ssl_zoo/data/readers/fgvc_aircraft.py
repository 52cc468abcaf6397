"""FGVC-Aircraft 2013b (Maji et al. 2013), 100 variants, the creators' train / val / test::

    <root>/data/variants.txt                         100 variant names (label order)
    <root>/data/images_variant_{train,val,test}.txt  "<image id> <variant name>" (names may hold spaces)
    <root>/data/images/<image id>.jpg

3,334 / 3,333 / 3,333. (torchvision's ``FGVCAircraft`` reads the same files; its docstring's
"102 variants" is wrong, the files have 100.) The images keep their copyright banner (the
bottom 20 px), as in the paper's and every public evaluation.
"""
from __future__ import annotations

import os

from ssl_zoo.data.readers.records import SplitRecords, read_lines, require

__all__ = ["read_fgvc_aircraft"]

HINT = "download fgvc-aircraft-2013b.tar.gz and extract it so that <root>/data/images_variant_train.txt exists"


def read_fgvc_aircraft(root: str) -> SplitRecords:
    """Splits "train", "val" and "test" (variant level) at ``root`` (the fgvc-aircraft-2013b directory)."""
    data = require(os.path.join(root, "data"), "FGVC Aircraft", HINT)
    classes = read_lines(require(os.path.join(data, "variants.txt"), "FGVC Aircraft", HINT))
    index = {c: i for i, c in enumerate(classes)}
    splits = {}
    for split in ("train", "val", "test"):
        path = require(os.path.join(data, f"images_variant_{split}.txt"), "FGVC Aircraft", HINT)
        rows = []
        for line in read_lines(path):
            image_id, _, variant = line.partition(" ")
            if variant not in index:
                raise ValueError(f"{path}: variant '{variant}' of image {image_id} is not in variants.txt")
            rows.append((f"data/images/{image_id}.jpg", index[variant]))
        splits[split] = rows
    return SplitRecords("aircraft", root, classes, splits)
