"""Oxford Flowers-102 (Nilsback & Zisserman 2008), the creators' train / val / test::

    <root>/jpg/image_00001.jpg ... image_08189.jpg
    <root>/imagelabels.mat        labels [1, 8189], 1..102
    <root>/setid.mat              trnid / valid / tstid: 1-based image numbers (1,020 / 1,020 / 6,149)

(torchvision's ``Flowers102`` reads the same files but checks their md5, and returned 1-based
labels until 0.13.) Class names are not in the release: classes are "1".."102".
"""
from __future__ import annotations

import os

import numpy as np
from scipy.io import loadmat

from ssl_zoo.data.readers.records import SplitRecords, require

__all__ = ["read_flowers102"]

HINT = ("download 102flowers.tgz, imagelabels.mat and setid.mat (robots.ox.ac.uk/~vgg/data/flowers/102) "
        "into <root> so that <root>/jpg/ and <root>/setid.mat exist")


def read_flowers102(root: str) -> SplitRecords:
    """Splits "train", "val", "test" at ``root`` (the flowers-102 directory)."""
    require(os.path.join(root, "jpg"), "Flowers102", HINT)
    labels = np.atleast_1d(loadmat(require(os.path.join(root, "imagelabels.mat"), "Flowers102", HINT),
                                   squeeze_me=True)["labels"]).astype(np.int64) - 1
    setid = loadmat(require(os.path.join(root, "setid.mat"), "Flowers102", HINT), squeeze_me=True)
    splits = {}
    for split, key in (("train", "trnid"), ("val", "valid"), ("test", "tstid")):
        if key not in setid:
            raise KeyError(f"{os.path.join(root, 'setid.mat')}: no '{key}' array")
        ids = np.atleast_1d(setid[key]).astype(np.int64)
        if ids.min() < 1 or ids.max() > len(labels):
            raise ValueError(f"setid.mat: '{key}' holds image numbers outside 1..{len(labels)}")
        splits[split] = [(f"jpg/image_{i:05d}.jpg", int(labels[i - 1])) for i in sorted(ids.tolist())]
    return SplitRecords("flowers", root, [str(i + 1) for i in range(int(labels.max()) + 1)], splits)
