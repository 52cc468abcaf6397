"""PASCAL VOC2007 as multi-label classification, built on the detection XML (``readers/voc.py``).

For each image and each of the 20 classes the target is, as in the devkit's classification
ground truth (``VOCdevkit/VOCcode``: ``gt = 1`` present, ``0`` difficult only, ``-1`` absent):

* 1  if the image has a non-difficult object of the class;
* 0  if its only objects of the class are "difficult" (ignored: left out of that class's
  AP at test, and out of that class's loss in training);
* -1 otherwise.

Splits: the creators' "train" (2,501), "val" (2,510) and "test" (4,952) of
``<root>/ImageSets/Main``, ``root`` = ``VOCdevkit/VOC2007``. (ssl-transfer counts difficult as
negative; the devkit, VISSL and mmpretrain ignore it at test, as here.)
"""
from __future__ import annotations

import os

import torch

from ssl_zoo.data.readers.records import SplitRecords, require
from ssl_zoo.data.readers.voc import check_split_size, load_class_names, parse_voc_xml, read_image_set

__all__ = ["read_voc2007_classification", "image_targets"]

HINT = ("extract VOCtrainval_06-Nov-2007.tar and VOCtest_06-Nov-2007.tar so that <root>/Annotations, "
        "<root>/JPEGImages and <root>/ImageSets/Main exist (root = VOCdevkit/VOC2007)")


def image_targets(annotation: dict, classes) -> torch.Tensor:
    """int8 ``[C]`` devkit classification labels (1 / 0 / -1) of one parsed XML."""
    index = {c: i for i, c in enumerate(classes)}
    t = torch.full((len(classes),), -1, dtype=torch.int8)
    for obj in annotation["objects"]:
        c = index.get(obj["name"])
        if c is None:
            raise ValueError(f"{annotation['filename']}: unknown class '{obj['name']}'")
        t[c] = max(int(t[c]), 0 if obj["difficult"] else 1)
    return t


def read_voc2007_classification(root: str) -> SplitRecords:
    """Splits "train", "val", "test" of VOC2007 at ``root`` with ``[20]`` int8 targets."""
    require(os.path.join(root, "Annotations"), "VOC2007", HINT)
    require(os.path.join(root, "ImageSets", "Main"), "VOC2007", HINT)
    classes = load_class_names(root)
    splits = {}
    for split in ("train", "val", "test"):
        ids = read_image_set(root, split)
        check_split_size(root, split, len(ids))
        rows = []
        for image_id in ids:
            ann = parse_voc_xml(os.path.join(root, "Annotations", f"{image_id}.xml"))
            rows.append((f"JPEGImages/{image_id}.jpg", image_targets(ann, classes)))
        splits[split] = rows
    return SplitRecords("voc2007", root, classes, splits, multilabel=True)
