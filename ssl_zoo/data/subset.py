"""Deterministic, class-balanced subsets of a dataset (for semi-supervised splits and quick runs).

A subset is a fraction of every class, or a fixed number of images per class, drawn with
a fixed seed that is independent of the training ``SEED``: every run, method and world
size sees the same images. Within a class the images are a prefix of one seeded
permutation of that class, so for a given seed a smaller subset is contained in a larger
one (the 1% split is inside the 10% split, as in the usual semi-supervised protocols).

Examples:
    >>> idx = subset_indices(targets, fraction=0.1, seed=0)       # 10% of each class
    >>> idx = subset_indices(targets, per_class=13, seed=0)       # 13 images per class
    >>> ds = build_dataset("cifar10_train", subset=SubsetSpec(per_class=400))
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
from torch.utils.data import Dataset, Subset

from ssl_zoo.data.samplers import mix_seed

__all__ = ["SubsetSpec", "subset_indices", "take_subset", "apply_subset", "subset_from_cfg", "holdout_split"]


@dataclass(frozen=True)
class SubsetSpec:
    """Which subset to keep: ``fraction`` of each class OR ``per_class`` images (0 = unused).

    Attributes:
        fraction: in (0, 1]; each class keeps ``max(1, round(fraction * n_c))`` of its n_c images.
        per_class: keep ``min(per_class, n_c)`` images of each class.
        seed: seed of the draw (fixed: not the run's ``SEED``).
    """

    fraction: float = 0.0
    per_class: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.fraction) <= 1.0:
            raise ValueError(f"subset fraction must be in (0, 1] (0 = unused), got {self.fraction}")
        if int(self.per_class) < 0:
            raise ValueError(f"subset per_class must be >= 0 (0 = unused), got {self.per_class}")
        if self.fraction > 0 and self.per_class > 0:
            raise ValueError("give a subset fraction or a number of images per class, not both "
                             f"(fraction={self.fraction}, per_class={self.per_class})")

    @property
    def active(self) -> bool:
        """True when a subset is asked for (fraction 1.0 still counts: it is a no-op draw)."""
        return self.fraction > 0 or self.per_class > 0


def subset_indices(targets: Union[torch.Tensor, Sequence[int]], fraction: float = 0.0, per_class: int = 0,
                   seed: int = 0) -> torch.Tensor:
    """Indices of a class-balanced subset, sorted ascending.

    Args:
        targets: int labels ``[N]`` (-1 = unlabeled is just one more group).
        fraction, per_class, seed: see :class:`SubsetSpec` (exactly one of the first two > 0).

    Returns:
        int64 ``[M]`` indices into ``targets``; class c contributes the first k_c entries of
        a permutation seeded by ``(seed, c)``, so the draw of one class does not depend on
        the others and smaller subsets nest inside larger ones.
    """
    spec = SubsetSpec(fraction, per_class, seed)
    if not spec.active:
        raise ValueError("subset_indices needs fraction > 0 or per_class > 0")
    targets = torch.as_tensor(targets, dtype=torch.int64).reshape(-1)
    chosen = []
    for c in torch.unique(targets).tolist():
        members = (targets == c).nonzero().squeeze(1)
        n = members.numel()
        k = min(n, int(per_class)) if per_class > 0 else max(1, int(math.floor(fraction * n + 0.5)))
        g = torch.Generator().manual_seed(mix_seed(seed, c))
        chosen.append(members[torch.randperm(n, generator=g)[:k]])
    return torch.cat(chosen).sort().values


def take_subset(dataset: Dataset, indices: torch.Tensor) -> Dataset:
    """The samples ``indices`` of ``dataset``, keeping its kind where possible.

    Datasets with a ``subset(indices)`` method (in-memory and file-backed sets) keep their
    kind (the batched path needs ``.images``); anything else becomes a
    ``torch.utils.data.Subset``. The result has ``subset_indices`` (into the full set).
    """
    indices = torch.as_tensor(indices, dtype=torch.int64)
    if hasattr(dataset, "subset"):
        return dataset.subset(indices)
    out = Subset(dataset, indices.tolist())
    out.subset_indices = indices
    return out


def _targets_of(dataset: Dataset) -> torch.Tensor:
    targets = getattr(dataset, "targets", None)
    if targets is None:
        raise TypeError(f"{type(dataset).__name__} has no .targets: cannot draw a class-balanced subset")
    return torch.as_tensor(targets, dtype=torch.int64)


def apply_subset(dataset: Dataset, spec: Optional[SubsetSpec]) -> Dataset:
    """``dataset`` restricted to ``spec`` (unchanged when ``spec`` is None or inactive)."""
    if spec is None or not spec.active:
        return dataset
    return take_subset(dataset, subset_indices(_targets_of(dataset), spec.fraction, spec.per_class, spec.seed))


def subset_from_cfg(cfg) -> Optional[SubsetSpec]:
    """DATASETS.TRAIN_SUBSET_{FRACTION, PER_CLASS, SEED} -> SubsetSpec, or None when unused."""
    d = cfg.DATASETS
    spec = SubsetSpec(float(d.TRAIN_SUBSET_FRACTION), int(d.TRAIN_SUBSET_PER_CLASS), int(d.TRAIN_SUBSET_SEED))
    return spec if spec.active else None


def holdout_split(targets: Union[torch.Tensor, Sequence[int]], fraction: float = 0.1, size: int = 0,
                  seed: int = 0, exclude: Optional[torch.Tensor] = None) -> "tuple[torch.Tensor, torch.Tensor]":
    """Split a training set into ``(rest, held-out validation)`` index sets, both sorted.

    Hyper-parameters of the evaluation protocols are chosen on such a split, never on the
    test set (PROTOCOLS.md s.3: 10,009 ImageNet train images).

    Args:
        targets: int labels ``[N]``.
        fraction: class-balanced fraction held out (see :func:`subset_indices`) when ``size`` is 0.
        size: hold out exactly this many images, drawn uniformly with ``seed`` (ImageNet's
            10,009; TF's split is the last 10,009 of its own file order, which an ImageFolder
            copy does not have, so a seeded draw stands in for it).
        seed: seed of the draw.
        exclude: indices that must stay in ``rest`` (e.g. the official semi-supervised lists,
            used whole): the holdout is drawn from the other images only.

    Returns:
        ``(rest [N - M], holdout [M])`` int64 indices, disjoint, covering ``range(N)``.
    """
    targets = torch.as_tensor(targets, dtype=torch.int64).reshape(-1)
    n = targets.numel()
    candidates = torch.arange(n)
    if exclude is not None and len(exclude):
        allowed = torch.ones(n, dtype=torch.bool)
        allowed[torch.as_tensor(exclude, dtype=torch.int64)] = False
        candidates = allowed.nonzero().squeeze(1)
    m = candidates.numel()
    if size > 0:
        if size >= m:
            raise ValueError(f"cannot hold out {size} of {m} images" + (f" ({n} minus {n - m} excluded)" if m < n else ""))
        # Without exclusions this is exactly the earlier draw (a permutation of range(n)).
        g = torch.Generator().manual_seed(mix_seed(seed, n))
        holdout = candidates[torch.randperm(m, generator=g)[:size]].sort().values
    else:
        holdout = candidates[subset_indices(targets[candidates], fraction=fraction, seed=seed)]
    keep = torch.ones(n, dtype=torch.bool)
    keep[holdout] = False
    return keep.nonzero().squeeze(1), holdout
