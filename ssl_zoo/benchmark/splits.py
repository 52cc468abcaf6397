"""Labelled data for the evaluation protocols: augmented training epochs and centre-crop passes.

PROTOCOLS.md s.3 (BYOL App. C.1): training images get a random resized crop + flip
(the ``crop_flip`` preset), evaluation images a resize to 256 and a centre crop of 224.
For other resolutions the same geometry is scaled: resize the shorter side to
``round(S / crop_fraction)`` and centre-crop ``S`` (``crop_fraction`` = 224/256 = 0.875),
e.g. 37 -> 32 for CIFAR.

Two implementations behind one interface (:class:`LabelledSplit`):

* in-memory sets (CIFAR, STL-10, the built-in set): batches are gathered from the uint8
  tensor and augmented batched on the device with per-sample parameters (the training
  data pipeline's kernels), no worker processes;
* file sets (ImageNet, any ImageFolder): PIL transforms in DataLoader workers.

Every iterator yields ``(images float [b, 3, S, S] normalised, labels int64 [b], indices
int64 [b])``; ``indices`` are positions in the split so callers can keep per-sample
results (features) in dataset order. With ``world_size > 1`` each rank gets its slice
of every global batch (training) or a strided shard (evaluation).
"""
from __future__ import annotations

import copy
from typing import Iterator, Optional, Sequence, Tuple

import torch
from torch.utils.data import DataLoader, Dataset

from ssl_zoo.data.datasets import InMemoryImageDataset
from ssl_zoo.data.samplers import mix_seed
from ssl_zoo.data.transforms.batched import BatchedMultiViewAugment
from ssl_zoo.data.transforms.geometry import eval_resize, resize_centre_crop
from ssl_zoo.data.transforms.pil import build_eval_transform, view_transform
from ssl_zoo.data.transforms.presets import get_view_specs

__all__ = ["LabelledSplit", "eval_resize", "Batch"]

Batch = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class _WithIndex(Dataset):
    """``(image, label, index)`` from a dataset of ``(image, label)``."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        image, label = self.dataset[self.indices[i]]
        return image, label, self.indices[i]


class LabelledSplit:
    """One labelled split (train or test) prepared for evaluation.

    Args:
        dataset: an :class:`InMemoryImageDataset` or a file-backed dataset with ``.targets``
            and a ``.transform`` attribute applied to PIL images.
        image_size: S, the side seen by the backbone.
        mean, std: normalisation (the pretraining config's ``INPUT.MEAN`` / ``INPUT.STD``).
        crop_fraction: centre crop / resize ratio of evaluation images (0.875).
        resize: shorter side before the centre crop; 0 = ``image_size / crop_fraction``
            (``geometry.eval_resize``, shared with the training kNN monitor).
        train_preset: augmentation preset of training epochs (``crop_flip``: PROTOCOLS.md s.3).
        device: where in-memory batches are augmented and returned.
        num_workers: DataLoader workers for file datasets.
        seed: seed of the epoch order and augmentations (fixed: independent of the run).
        rank, world_size: this process's slice.
    """

    def __init__(self, dataset: Dataset, *, image_size: int, mean: Sequence[float], std: Sequence[float],
                 crop_fraction: float = 0.875, train_preset: str = "crop_flip", device: torch.device = torch.device("cpu"),
                 num_workers: int = 0, seed: int = 0, rank: int = 0, world_size: int = 1, resize: int = 0) -> None:
        self.dataset, self.image_size = dataset, int(image_size)
        self.mean, self.std = tuple(mean), tuple(std)
        self.resize = eval_resize(self.image_size, crop_fraction, resize)
        self.device, self.num_workers, self.seed = device, int(num_workers), int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.specs = get_view_specs(train_preset, self.image_size)
        if len(self.specs) != 1:
            raise ValueError(f"evaluation training needs a one-view preset, '{train_preset}' has {len(self.specs)}")
        self.in_memory = isinstance(dataset, InMemoryImageDataset)
        targets = getattr(dataset, "targets", None)
        if targets is None:
            raise TypeError(f"{type(dataset).__name__} has no .targets: evaluation needs a labelled dataset")
        self.targets = torch.as_tensor(targets, dtype=torch.int64)
        if (self.targets < 0).any():
            raise ValueError("evaluation needs labels for every image; this split has unlabeled images (target -1)")
        self.num_classes = int(self.targets.max()) + 1
        self._mean_t = torch.tensor(self.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self._std_t = torch.tensor(self.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)

    def __len__(self) -> int:
        return int(self.targets.numel())

    # ------------------------------------------------------------------------ evaluation
    def eval_batches(self, indices: Optional[torch.Tensor] = None, batch_size: int = 256) -> Iterator[Batch]:
        """Centre-crop batches of ``indices`` (default: all), in order; rank r takes ``r::world_size``."""
        indices = torch.arange(len(self)) if indices is None else torch.as_tensor(indices, dtype=torch.int64)
        indices = indices[self.rank::self.world_size]
        if self.in_memory:
            for start in range(0, len(indices), batch_size):
                idx = indices[start:start + batch_size]
                yield self._centre_crop(self.dataset.images.index_select(0, idx)), self.targets[idx].to(self.device), idx
        else:
            yield from self._file_batches(indices.split(batch_size),
                                          build_eval_transform(self.image_size, self.resize, self.mean, self.std))

    def _centre_crop(self, images: torch.Tensor) -> torch.Tensor:
        x = resize_centre_crop(images.to(self.device, non_blocking=True), self.image_size, self.resize)
        return (x - self._mean_t) / self._std_t

    # ------------------------------------------------------------------------ training
    def train_batches(self, indices: Optional[torch.Tensor], batch_size: int, epoch: int,
                      drop_last: bool = False) -> Iterator[Batch]:
        """One shuffled, augmented epoch over ``indices`` (default: all).

        ``batch_size`` is global: rank r gets the r-th of ``world_size`` slices of every batch.
        The order depends only on ``(seed, epoch)``; so do the augmentations of in-memory
        sets (file sets draw crops in DataLoader workers with their own RNG).
        """
        indices = torch.arange(len(self)) if indices is None else torch.as_tensor(indices, dtype=torch.int64)
        g = torch.Generator().manual_seed(mix_seed(self.seed, epoch))
        order = indices[torch.randperm(len(indices), generator=g)]
        stop = len(order) - len(order) % batch_size if drop_last else len(order)
        batches = [order[s:min(s + batch_size, stop)] for s in range(0, stop, batch_size)]
        mine = [b.tensor_split(self.world_size)[self.rank] for b in batches]
        if self.in_memory:
            aug = BatchedMultiViewAugment(self.specs, self.mean, self.std)
            for k, idx in enumerate(mine):
                gen = torch.Generator().manual_seed(mix_seed(self.seed, epoch, k, self.rank))
                x = aug(self.dataset.images.index_select(0, idx).to(self.device), gen)[0]
                yield x, self.targets[idx].to(self.device), idx
        else:
            # Worker processes draw the crops with their own RNG (torch's DataLoader seeding).
            yield from self._file_batches(mine, view_transform(self.specs[0], self.mean, self.std))

    def _file_batches(self, batches: Sequence[torch.Tensor], transform) -> Iterator[Batch]:
        """PIL-transformed batches of file-backed images, exactly the given index batches."""
        ds = copy.copy(self.dataset)  # shallow: same samples, own transform
        ds.transform = transform
        flat = torch.cat(list(batches)).tolist() if len(batches) else []
        bounds, start = [], 0
        for b in batches:
            bounds.append(list(range(start, start + len(b))))
            start += len(b)
        loader = DataLoader(_WithIndex(ds, flat), batch_sampler=bounds, num_workers=self.num_workers,
                            pin_memory=self.device.type == "cuda")
        for x, y, idx in loader:
            yield x.to(self.device, non_blocking=True), torch.as_tensor(y).to(self.device), torch.as_tensor(idx)
