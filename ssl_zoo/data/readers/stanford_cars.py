"""Stanford Cars (Krause et al. 2013) from the devkit .mat files::

    <root>/devkit/cars_meta.mat                       class_names [1, 196]
    <root>/devkit/cars_train_annos.mat                annotations: bbox_x1..y2, class (1-based), fname
    <root>/cars_test_annos_withlabels.mat             the test labels (released later; also accepted in devkit/)
    <root>/cars_train/00001.jpg ..., <root>/cars_test/00001.jpg ...

Train 8,144, test 8,041. The original URLs are dead (torchvision's download raises); a mirror
with this layout is e.g. Kaggle's ``stanford-cars-dataset``.
"""
from __future__ import annotations

import os

import numpy as np
from scipy.io import loadmat

from ssl_zoo.data.readers.records import SplitRecords, require

__all__ = ["read_stanford_cars"]

HINT = ("put the devkit (devkit/cars_meta.mat, devkit/cars_train_annos.mat), cars_test_annos_withlabels.mat and "
        "the cars_train/ and cars_test/ image folders under <root>")


def _annotations(path: str):
    annos = loadmat(path, squeeze_me=True)["annotations"]
    names = annos.dtype.names
    if "fname" not in names or "class" not in names:
        raise ValueError(f"{path}: 'annotations' has no fname / class fields (fields: {names})")
    fnames, labels = np.atleast_1d(annos["fname"]), np.atleast_1d(annos["class"])
    return [str(f) for f in fnames], [int(c) - 1 for c in labels]  # 1-based in the devkit


def read_stanford_cars(root: str) -> SplitRecords:
    """Splits "train" and "test" of Stanford Cars at ``root``."""
    devkit = require(os.path.join(root, "devkit"), "Stanford Cars", HINT)
    classes = [str(c) for c in np.atleast_1d(loadmat(require(os.path.join(devkit, "cars_meta.mat"), "Stanford Cars", HINT),
                                                     squeeze_me=True)["class_names"])]
    test_mat = os.path.join(root, "cars_test_annos_withlabels.mat")
    if not os.path.isfile(test_mat):
        test_mat = require(os.path.join(devkit, "cars_test_annos_withlabels.mat"), "Stanford Cars", HINT)
    splits = {}
    for split, mat, folder in (("train", os.path.join(devkit, "cars_train_annos.mat"), "cars_train"),
                               ("test", test_mat, "cars_test")):
        require(os.path.join(root, folder), "Stanford Cars", HINT)
        fnames, labels = _annotations(require(mat, "Stanford Cars", HINT))
        bad = [c for c in labels if not 0 <= c < len(classes)]
        if bad:
            raise ValueError(f"{mat}: class index {bad[0] + 1} outside 1..{len(classes)}")
        splits[split] = [(f"{folder}/{f}", c) for f, c in zip(fnames, labels)]
    return SplitRecords("cars", root, classes, splits)
