"""The 12 transfer datasets of BYOL Table 3: reader, folder, split rule, metric and the paper's numbers.

Numbers and split sizes: PROTOCOLS.md s.5 (BYOL App. D, Table 3, ResNet-50 1x, ImageNet-pretrained).
Each dataset is read from ``<datasets root>/<folder>`` (``DATASETS.ROOT`` / ``SSL_ZOO_DATASETS``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from typing import Callable, Dict, Optional, Tuple

from ssl_zoo.benchmark.transfer.splits import SplitRule
from ssl_zoo.data.readers.birdsnap import read_birdsnap
from ssl_zoo.data.readers.caltech101 import read_caltech101
from ssl_zoo.data.readers.cifar import read_cifar
from ssl_zoo.data.readers.dtd import read_dtd
from ssl_zoo.data.readers.fgvc_aircraft import read_fgvc_aircraft
from ssl_zoo.data.readers.flowers102 import read_flowers102
from ssl_zoo.data.readers.food101 import read_food101
from ssl_zoo.data.readers.oxford_pets import read_oxford_pets
from ssl_zoo.data.readers.records import SplitRecords
from ssl_zoo.data.readers.stanford_cars import read_stanford_cars
from ssl_zoo.data.readers.sun397 import read_sun397
from ssl_zoo.data.readers.voc2007_cls import read_voc2007_classification

__all__ = ["TransferDataset", "TRANSFER_DATASETS", "get_transfer_dataset"]


@dataclass(frozen=True)
class TransferDataset:
    """One row of PROTOCOLS.md s.5's table.

    Attributes:
        name: the ``--dataset`` name.
        folder: directory under the datasets root ("" = the root itself, CIFAR).
        reader: ``root -> SplitRecords``.
        rule: how train / val / test are formed.
        metric: "top1", "mean_per_class" or "voc11_map".
        sizes: (train, val, test) of the paper's table.
        paper_linear, paper_finetune: BYOL's Table 3 numbers.
        display: the table's name.
    """

    name: str
    folder: str
    reader: Callable[[str], SplitRecords]
    rule: SplitRule
    metric: str
    sizes: Optional[Tuple[int, int, int]]
    paper_linear: Optional[float]
    paper_finetune: Optional[float]
    display: str

    def root(self, datasets_root: str) -> str:
        return os.path.join(datasets_root, self.folder) if self.folder else datasets_root


_OFFICIAL = SplitRule("official")
_TENTH = SplitRule("fraction", fraction=0.1)

TRANSFER_DATASETS: Dict[str, TransferDataset] = {d.name: d for d in [
    TransferDataset("food101", "food-101", read_food101, _TENTH, "top1", (68175, 7575, 25250), 75.3, 88.5, "Food101"),
    TransferDataset("cifar10", "", partial(read_cifar, num_classes=10), _TENTH, "top1", (45000, 5000, 10000), 91.3,
                    97.8, "CIFAR-10"),
    TransferDataset("cifar100", "", partial(read_cifar, num_classes=100), _TENTH, "top1", (44933, 5067, 10000), 78.4,
                    86.1, "CIFAR-100"),
    TransferDataset("birdsnap", "birdsnap", read_birdsnap, SplitRule("test_count"), "top1", (42405, 4981, 2443), 57.2,
                    76.3, "Birdsnap"),
    TransferDataset("sun397", "sun397", read_sun397, SplitRule("per_class", val_per_class=10), "top1",
                    (15880, 3970, 19850), 62.2, 63.7, "SUN397 (split 1)"),
    TransferDataset("cars", "stanford_cars", read_stanford_cars, _TENTH, "top1", (6494, 1650, 8041), 67.8, 91.6,
                    "Stanford Cars"),
    TransferDataset("aircraft", "fgvc-aircraft-2013b", read_fgvc_aircraft, _OFFICIAL, "mean_per_class",
                    (3334, 3333, 3333), 60.6, 88.1, "FGVC Aircraft"),
    TransferDataset("voc2007", "VOCdevkit/VOC2007", read_voc2007_classification, _OFFICIAL, "voc11_map",
                    (2501, 2510, 4952), 82.5, 85.4, "VOC2007"),
    TransferDataset("dtd", "dtd", read_dtd, _OFFICIAL, "top1", (1880, 1880, 1880), 75.5, 76.2, "DTD (split 1)"),
    TransferDataset("pets", "oxford-iiit-pet", read_oxford_pets, SplitRule("per_class", val_per_class=20),
                    "mean_per_class", (2940, 740, 3669), 90.4, 91.7, "Oxford-IIIT Pets"),
    TransferDataset("caltech101", "caltech101", read_caltech101,
                    SplitRule("per_class", val_per_class=5, train_per_class=25, source="all"), "mean_per_class",
                    (2550, 510, 6084), 94.2, 93.8, "Caltech-101"),
    TransferDataset("flowers", "flowers-102", read_flowers102, _OFFICIAL, "mean_per_class", (1020, 1020, 6149),
                    96.1, 97.0, "Oxford Flowers"),
]}


def get_transfer_dataset(name: str) -> TransferDataset:
    """The catalogue entry of ``name``; a ``KeyError`` listing the known names otherwise."""
    if name not in TRANSFER_DATASETS:
        raise KeyError(f"unknown transfer dataset '{name}'; expected one of {sorted(TRANSFER_DATASETS)}, 'all', "
                       f"or the path of an ImageFolder with train/ and test/")
    return TRANSFER_DATASETS[name]
