"""Oxford-IIIT Pets (Parkhi et al. 2012), the creators' trainval / test lists::

    <root>/images/<Breed_name>_<n>.jpg
    <root>/annotations/{trainval,test}.txt   "<image> <class id 1..37> <species 1|2> <breed id>": 3,680 / 3,669

(The same files torchvision's ``OxfordIIITPet`` reads.) The validation split (20 per class) is
held out from trainval.
"""
from __future__ import annotations

import os
from typing import Dict

from ssl_zoo.data.readers.records import SplitRecords, read_lines, require

__all__ = ["read_oxford_pets"]

HINT = ("download images.tar.gz and annotations.tar.gz (robots.ox.ac.uk/~vgg/data/pets) and extract both "
        "into <root> so that <root>/annotations/trainval.txt exists")


def read_oxford_pets(root: str) -> SplitRecords:
    """Splits "train" (= trainval) and "test" at ``root`` (the oxford-iiit-pet directory)."""
    require(os.path.join(root, "images"), "Oxford-IIIT Pets", HINT)
    names: Dict[int, str] = {}
    splits = {}
    for split, listing in (("train", "trainval"), ("test", "test")):
        path = require(os.path.join(root, "annotations", f"{listing}.txt"), "Oxford-IIIT Pets", HINT)
        rows = []
        for line in read_lines(path):
            if line.startswith("#"):
                continue
            image, class_id = line.split()[:2]
            label = int(class_id) - 1  # 1-based in the lists
            names.setdefault(label, image.rsplit("_", 1)[0])
            rows.append((f"images/{image}.jpg", label))
        splits[split] = rows
    if sorted(names) != list(range(len(names))):
        raise ValueError(f"{root}/annotations: class ids are not 1..{len(names)}")
    return SplitRecords("pets", root, [names[i] for i in range(len(names))], splits)
