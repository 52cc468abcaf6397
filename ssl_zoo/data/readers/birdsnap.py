"""Birdsnap v1.1 (Berg et al. 2014): a list of Flickr URLs, not images. ``birdsnap.tgz`` holds::

    birdsnap/species.txt       header, then id <tab> common <tab> scientific <tab> dir (500 species)
    birdsnap/images.txt        header, then url <tab> md5 <tab> path <tab> species_id <tab> boxes/parts...
    birdsnap/test_images.txt   header "path", then the 2,443 test images' paths
    birdsnap/get_birdsnap.py   downloads what is still online into download/images/<path>

6-8% of the links are dead in any copy (PROTOCOLS.md s.5): missing images are counted and listed
in ``SplitRecords.missing``, never an error. No public codebase (torchvision, VISSL, mmpretrain,
ssl-transfer) has a reader.
"""
from __future__ import annotations

import logging
import os

from ssl_zoo.data.readers.records import SplitRecords, read_lines, require

logger = logging.getLogger(__name__)

__all__ = ["read_birdsnap"]

HINT = ("download http://thomasberg.org/datasets/birdsnap/1.1/birdsnap.tgz, extract it and run its "
        "get_birdsnap.py, so that <root>/images.txt and <root>/download/images/ exist")


def _image_dir(root: str) -> str:
    for sub in ("download/images", "images"):
        if os.path.isdir(os.path.join(root, sub)):
            return sub
    raise FileNotFoundError(f"Birdsnap: no image directory under {root} (download/images or images); {HINT}")


def read_birdsnap(root: str) -> SplitRecords:
    """Splits "train" (images.txt minus test) and "test" (test_images.txt), present images only."""
    species = [line.split("\t") for line in read_lines(require(os.path.join(root, "species.txt"), "Birdsnap", HINT),
                                                       skip_header=True)]
    ids = {int(row[0]): i for i, row in enumerate(sorted(species, key=lambda r: int(r[0])))}
    classes = [row[1] for row in sorted(species, key=lambda r: int(r[0]))]
    header, *rows = read_lines(require(os.path.join(root, "images.txt"), "Birdsnap", HINT))
    cols = header.split("\t")
    if "path" not in cols or "species_id" not in cols:
        raise ValueError(f"{os.path.join(root, 'images.txt')}: header has no 'path' / 'species_id' column: {cols[:6]}")
    pi, si = cols.index("path"), cols.index("species_id")
    test = set(read_lines(require(os.path.join(root, "test_images.txt"), "Birdsnap", HINT), skip_header=True))
    images = _image_dir(root)
    splits, missing = {"train": [], "test": []}, []
    for row in rows:
        fields = row.split("\t")
        path, label = fields[pi], ids[int(fields[si])]
        rel = f"{images}/{path}"
        if not os.path.isfile(os.path.join(root, rel)):
            missing.append(path)
            continue
        splits["test" if path in test else "train"].append((rel, label))
    if missing:
        logger.warning(f"Birdsnap: {len(missing)} of {len(rows)} listed images are missing (dead links are "
                       f"expected: 6-8% in any copy); using the {len(rows) - len(missing)} present")
    return SplitRecords("birdsnap", root, classes, splits, missing=missing)
