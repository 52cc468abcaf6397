"""Train / validation / test splits of the transfer datasets, exactly as PROTOCOLS.md s.5.

* The creators' validation split where one exists (Aircraft, VOC2007, DTD, Flowers): ``official``.
* Otherwise held out from train, per class, with a seeded draw (:class:`SplitRule`):
  Food101 and CIFAR 10% of each class; SUN397 10 of the 50 Training_01 images per class (40 + 10);
  Pets 20 per class; Birdsnap as many per class as the class has test images; Caltech-101 30 per
  class drawn without replacement from all images (25 train + 5 val), the rest test.

Within a class the images are sorted by id and permuted with a generator seeded by
``(seed, class)``, so the draw depends neither on the listing order nor on other classes.
The chosen ids are written to a JSON split file; later runs (and other users given the file)
read it back, so every run sees the same images. Split sizes are compared with the table of
PROTOCOLS.md s.5 and every mismatch is reported.

CIFAR-100: the paper's 44,933 / 5,067 cannot come from a per-class 10% (which gives 5,000) and
suggests a random, not stratified, draw. We hold out 10% per class for every dataset and
report the difference (a deliberate choice: per-class keeps every class in validation).
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ssl_zoo.data.readers.records import SplitRecords
from ssl_zoo.data.samplers import mix_seed
from ssl_zoo.utils.file_io import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["SplitRule", "draw_splits", "load_or_draw_splits", "check_sizes", "SPLITS"]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitRule:
    """How a dataset's train / val / test come from its release.

    Attributes:
        kind: "official" (the release has train, val, test), "fraction" (hold out ``fraction`` of
            each class of train), "per_class" (hold out ``val_per_class`` per class of ``source``;
            with ``train_per_class`` > 0 only that many more go to train and the rest to test),
            "test_count" (hold out per class as many as that class has test images: Birdsnap).
        fraction, val_per_class, train_per_class: see ``kind``.
        source: the release split drawn from ("train", or "all" for Caltech-101).
    """

    kind: str = "fraction"
    fraction: float = 0.1
    val_per_class: int = 0
    train_per_class: int = 0
    source: str = "train"

    def __post_init__(self) -> None:
        if self.kind not in ("official", "fraction", "per_class", "test_count"):
            raise ValueError(f"unknown split rule '{self.kind}'")


def _class_groups(ids: Sequence[str], labels: Sequence[int]) -> Dict[int, List[str]]:
    groups: Dict[int, List[str]] = {}
    for i, y in zip(ids, labels):
        groups.setdefault(int(y), []).append(i)
    return {c: sorted(v) for c, v in sorted(groups.items())}


def _permuted(members: List[str], seed: int, c: int) -> List[str]:
    g = torch.Generator().manual_seed(mix_seed(seed, c))
    return [members[k] for k in torch.randperm(len(members), generator=g).tolist()]


def draw_splits(records: SplitRecords, rule: SplitRule, seed: int = 0) -> Dict[str, List[str]]:
    """Image ids of "train", "val", "test" (each sorted) by ``rule``.

    Raises:
        ValueError: the release lacks a split the rule needs, or a class is too small.
    """
    if rule.kind == "official":
        missing = [s for s in SPLITS if s not in records.splits]
        if missing:
            raise ValueError(f"{records.name}: the release has no {missing} split (has {sorted(records.splits)})")
        return {s: sorted(i for i, _ in records.splits[s]) for s in SPLITS}
    if records.multilabel:
        raise ValueError(f"{records.name}: per-class hold-out needs single-label targets")
    source = records.splits.get(rule.source)
    if source is None:
        raise ValueError(f"{records.name}: no '{rule.source}' split to hold validation out of")
    groups = _class_groups([i for i, _ in source], [y for _, y in source])
    test_counts = {}
    if rule.kind == "test_count":
        for _, y in records.splits.get("test", []):
            test_counts[int(y)] = test_counts.get(int(y), 0) + 1
    out = {"train": [], "val": [], "test": []}
    for c, members in groups.items():
        n = len(members)
        if rule.kind == "fraction":
            k = max(1, int(math.floor(rule.fraction * n + 0.5)))
        elif rule.kind == "per_class":
            k = rule.val_per_class
        else:
            k = test_counts.get(c, 0)
        need = k + (rule.train_per_class or 1)
        if n < need:
            raise ValueError(f"{records.name}: class '{records.classes[c]}' has {n} images in '{rule.source}', "
                             f"the split needs at least {need}")
        perm = _permuted(members, seed, c)
        out["val"] += perm[:k]
        stop = k + rule.train_per_class if rule.train_per_class else n
        out["train"] += perm[k:stop]
        out["test"] += perm[stop:]
    if rule.source != "all":
        out["test"] = [i for i, _ in records.splits.get("test", [])]
    return {s: sorted(v) for s, v in out.items()}


def load_or_draw_splits(records: SplitRecords, rule: SplitRule, seed: int, path: str) -> Dict[str, List[str]]:
    """The split file at ``path`` if it exists (checked against the release), else draw and write it.

    Raises:
        ValueError: the split file names images the release does not have (a different copy of
            the data): the message says which file to delete to redraw.
    """
    if path and os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        known = {i for rows in records.splits.values() for i, _ in rows}
        for s in SPLITS:
            unknown = [i for i in saved.get(s, []) if i not in known]
            if unknown:
                raise ValueError(f"{path}: {len(unknown)} '{s}' images are not in {records.root} "
                                 f"(e.g. {unknown[:3]}); delete the split file to redraw it for this copy")
        logger.info(f"{records.name}: splits read from {path}")
        return {s: list(saved[s]) for s in SPLITS}
    splits = draw_splits(records, rule, seed)
    if path:
        payload = json.dumps({"dataset": records.name, "seed": seed, "rule": asdict(rule), **splits}).encode()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        atomic_write(path, lambda f: f.write(payload))
        logger.info(f"{records.name}: splits written to {path}")
    return splits


def check_sizes(name: str, splits: Dict[str, List[str]], expected: Optional[Tuple[int, int, int]]) -> List[str]:
    """Messages for every split whose size differs from PROTOCOLS.md s.5's table (also warned)."""
    if expected is None:
        return []
    msgs = [f"{name} {s}: {len(splits[s])} images, the paper's table has {e}"
            for s, e in zip(SPLITS, expected) if len(splits[s]) != e]
    for m in msgs:
        logger.warning(m)
    return msgs
