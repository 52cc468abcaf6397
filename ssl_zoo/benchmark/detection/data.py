"""VOC detection data for the benchmark: splits by name, training flips, loaders.

``voc07``: train VOC2007 trainval (BYOL's table, 5,011 images); ``voc0712``: VOC2007 + VOC2012
trainval (MoCo's protocol, 16,551). Both test on VOC2007 test (4,952). PROTOCOLS.md s.6.
Images stay at their size here; resizing to the protocol's scales happens in the model
(``model.MultiScaleTransform``), as torchvision's detection models expect.
"""
from __future__ import annotations

import os
import random
from typing import Callable, Dict, List, Sequence, Tuple

import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset
from torchvision.transforms.functional import pil_to_tensor

from ssl_zoo.data.catalog import resolve_root
from ssl_zoo.data.readers.voc import VOCDetectionDataset, load_class_names
from ssl_zoo.data.samplers import InfiniteBatchSampler, SeededDataset

__all__ = ["DETECTION_DATASETS", "voc_roots", "build_voc_splits", "to_tensor_and_flip", "collate",
           "build_train_loader", "build_test_loader"]

# name -> ([(year, image set) trained on], (year, image set) tested on)
DETECTION_DATASETS: Dict[str, Tuple[List[Tuple[str, str]], Tuple[str, str]]] = {
    "voc07": ([("2007", "trainval")], ("2007", "test")),
    "voc0712": ([("2007", "trainval"), ("2012", "trainval")], ("2007", "test")),
}


def voc_roots(datasets_root: str, voc2007_root: str = "", voc2012_root: str = "") -> Dict[str, str]:
    """Year -> directory: explicit roots, else ``<datasets root>/VOCdevkit/VOC<year>``."""
    base = os.path.join(resolve_root(datasets_root), "VOCdevkit")
    return {"2007": voc2007_root or os.path.join(base, "VOC2007"),
            "2012": voc2012_root or os.path.join(base, "VOC2012")}


def to_tensor_and_flip(flip_prob: float) -> Callable:
    """``(PIL image, target) -> (float [3, H, W] in 0-1, target)``, flipped horizontally with
    probability ``flip_prob`` (boxes ``x1, x2 -> W - x2, W - x1`` in continuous coordinates)."""

    def transform(image, target):
        img = pil_to_tensor(image).float().div_(255.0)
        if flip_prob > 0 and random.random() < flip_prob:
            img = img.flip(-1)
            w = img.shape[-1]
            boxes = target["boxes"].clone()
            boxes[:, [0, 2]] = w - target["boxes"][:, [2, 0]]
            target = {**target, "boxes": boxes}
        return img, target

    return transform


def build_voc_splits(name: str, roots: Dict[str, str], flip_prob: float = 0.5):
    """``(train dataset, test dataset, class names)`` of a ``DETECTION_DATASETS`` name.

    Raises:
        KeyError: unknown name (lists the known ones).
        ValueError: the training years declare different class lists.
    """
    if name not in DETECTION_DATASETS:
        raise KeyError(f"--dataset '{name}' is not a detection dataset; choose one of {sorted(DETECTION_DATASETS)}")
    train_sets, (test_year, test_set) = DETECTION_DATASETS[name]
    classes = load_class_names(roots[test_year]) if os.path.isdir(roots[test_year]) else None
    parts = []
    for year, image_set in train_sets:
        ds = VOCDetectionDataset(roots[year], image_set, classes, to_tensor_and_flip(flip_prob))
        if classes is not None and load_class_names(roots[year]) != classes:
            raise ValueError(f"{roots[year]} and {roots[test_year]} declare different classes")
        classes = ds.class_names
        parts.append(ds)
    train = parts[0] if len(parts) == 1 else ConcatDataset(parts)
    test = VOCDetectionDataset(roots[test_year], test_set, classes, to_tensor_and_flip(0.0))
    return train, test, list(classes)


def collate(batch: Sequence[tuple]) -> Tuple[List[torch.Tensor], List[dict]]:
    """Lists of images and targets (images differ in size; the model batches them)."""
    return [b[0] for b in batch], [b[1] for b in batch]


def build_train_loader(dataset: Dataset, global_batch: int, seed: int, rank: int, world_size: int,
                       start_iter: int, num_workers: int) -> DataLoader:
    """Infinite loader whose batches are a function of (seed, iteration): a resumed run reads the
    batches it would have read (``ssl_zoo.data.samplers``), flips included (per-sample seeds)."""
    sampler = InfiniteBatchSampler(len(dataset), global_batch, seed, rank, world_size, start_iter, with_seeds=True)
    # own generator: creating the iterator must not draw from the global RNG, which a resumed run
    # has just restored from the checkpoint
    return DataLoader(SeededDataset(dataset), batch_sampler=sampler, num_workers=num_workers, collate_fn=collate,
                      persistent_workers=num_workers > 0, generator=torch.Generator().manual_seed(seed))


def build_test_loader(dataset: Dataset, batch_size: int, rank: int, world_size: int, num_workers: int) -> DataLoader:
    """This process's shard (images ``rank::world_size``) in order."""
    shard = torch.utils.data.Subset(dataset, list(range(rank, len(dataset), world_size)))
    return DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate)
