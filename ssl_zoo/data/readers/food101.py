"""Food-101 (Bossard et al. 2014), official release ``food-101.tar.gz`` extracted::

    food-101/meta/classes.txt          101 class names (label order)
    food-101/meta/{train,test}.json    {class: ["<class>/<image id>", ...]}: 75,750 / 25,250
    food-101/images/<class>/<image id>.jpg

Same reading as torchvision's ``Food101`` (which also reads the JSON), with our error messages.
"""
from __future__ import annotations

import json
import os

from ssl_zoo.data.readers.records import SplitRecords, read_lines, require

__all__ = ["read_food101"]

HINT = "download http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz and extract it so that <root>/meta/train.json exists"


def read_food101(root: str) -> SplitRecords:
    """Splits "train" and "test" of Food-101 at ``root`` (the ``food-101`` directory)."""
    meta = require(os.path.join(root, "meta"), "Food101", HINT)
    classes = read_lines(require(os.path.join(meta, "classes.txt"), "Food101", HINT))
    index = {c: i for i, c in enumerate(classes)}
    splits = {}
    for split in ("train", "test"):
        path = require(os.path.join(meta, f"{split}.json"), "Food101", HINT)
        with open(path, encoding="utf-8") as f:
            listing = json.load(f)
        unknown = sorted(set(listing) - set(index))
        if unknown:
            raise ValueError(f"{path}: classes not in meta/classes.txt: {unknown[:5]}")
        splits[split] = [(f"images/{name}.jpg", index[c]) for c in classes for name in listing.get(c, [])]
    return SplitRecords("food101", root, classes, splits)
