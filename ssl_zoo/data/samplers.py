"""Deterministic, resumable, rank-sharded infinite sampling.

The data order is a pure function of (seed, iteration), so a run resumed at iteration ``i``
reads exactly the batches it would have read without the interruption, and the global
batch of an iteration does not depend on the number of processes:

* epoch ``e`` shuffles with ``torch.randperm(N, generator=Generator().manual_seed(mix_seed(seed, e)))``
  and keeps the first ``iters_per_epoch * global_batch`` indices (drop-last, so every step
  sees a full batch; the dropped tail differs every epoch);
* iteration ``i`` (epoch ``i // iters_per_epoch``) takes the ``global_batch`` block
  ``i % iters_per_epoch`` of that permutation; rank ``r`` of ``W`` takes the contiguous slice
  ``[r * B, (r + 1) * B)`` of the block (``B = global_batch / W``), so concatenating the
  ranks' batches in rank order gives the single-process batch;
* with ``with_seeds=True`` each index comes with a per-sample seed ``mix_seed(seed, e, index)``
  that :class:`SeededDataset` uses to seed the augmentation in the worker, which makes
  worker-side (PIL) augmentation reproducible on resume and independent of worker count.
"""
from __future__ import annotations

import random
from typing import Iterator, List, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, get_worker_info

__all__ = ["mix_seed", "InfiniteBatchSampler", "SeededDataset"]

_MASK64 = (1 << 64) - 1


def mix_seed(*values: int) -> int:
    """Hash integers into one well-mixed seed in [0, 2**63) (splitmix64 finaliser per value).

    Unlike ``seed + epoch`` this never makes (seed, e+1) collide with (seed+1, e).
    """
    h = 0x9E3779B97F4A7C15
    for v in values:
        z = (h ^ (int(v) & _MASK64)) * 0xBF58476D1CE4E5B9 & _MASK64
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB & _MASK64
        h = (z ^ (z >> 31)) + 0x9E3779B97F4A7C15 & _MASK64
    return h >> 1


class InfiniteBatchSampler(Sampler):
    """Infinite per-rank batches of dataset indices; usable as a DataLoader ``batch_sampler``.

    Args:
        size: number of images N in the dataset.
        global_batch_size: images per iteration summed over ranks (SOLVER.IMS_PER_BATCH).
        seed: data-order seed.
        rank, world_size: this process and the number of processes.
        start_iter: first iteration yielded (resume point).
        with_seeds: yield ``(index, per_sample_seed)`` pairs instead of plain indices.

    Yields:
        lists of ``global_batch_size // world_size`` ints, or of (int, int) pairs.

    Attributes:
        iters_per_epoch: ``N // global_batch_size`` (drop-last).
    """

    def __init__(self, size: int, global_batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 start_iter: int = 0, with_seeds: bool = False) -> None:
        if global_batch_size % world_size:
            raise ValueError(f"global batch {global_batch_size} is not divisible by world size {world_size}")
        if size < global_batch_size:
            raise ValueError(f"dataset of {size} images is smaller than one global batch ({global_batch_size})")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        self.size, self.global_batch_size, self.seed = size, global_batch_size, seed
        self.rank, self.world_size, self.start_iter = rank, world_size, start_iter
        self.with_seeds = with_seeds
        self.batch_size = global_batch_size // world_size
        self.iters_per_epoch = size // global_batch_size

    def epoch_permutation(self, epoch: int) -> torch.Tensor:
        """int64 [iters_per_epoch * global_batch_size]: the epoch's global order (drop-last)."""
        g = torch.Generator().manual_seed(mix_seed(self.seed, epoch))
        return torch.randperm(self.size, generator=g)[: self.iters_per_epoch * self.global_batch_size]

    def batch_indices(self, epoch_perm: torch.Tensor, iteration: int) -> torch.Tensor:
        """This rank's int64 [B] indices of ``iteration``, given its epoch's permutation."""
        block = iteration % self.iters_per_epoch
        start = block * self.global_batch_size + self.rank * self.batch_size
        return epoch_perm[start: start + self.batch_size]

    def iter_batches(self) -> Iterator[Tuple[int, int, torch.Tensor]]:
        """Yield ``(iteration, epoch, indices int64 [B])`` forever from ``start_iter``."""
        it = self.start_iter
        epoch, perm = None, None
        while True:
            e = it // self.iters_per_epoch
            if e != epoch:
                epoch, perm = e, self.epoch_permutation(e)
            yield it, epoch, self.batch_indices(perm, it)
            it += 1

    def __iter__(self) -> Iterator[List[Union[int, Tuple[int, int]]]]:
        for _, epoch, idx in self.iter_batches():
            if self.with_seeds:
                yield [(i, mix_seed(self.seed, epoch, i)) for i in idx.tolist()]
            else:
                yield idx.tolist()


class SeededDataset(Dataset):
    """Wraps a dataset so ``ds[(index, seed)]`` seeds ``torch``, ``random`` and ``numpy`` before
    ``dataset[index]`` runs its transform: the augmentation of a sample is a function of its seed.

    In the main process (``num_workers=0``) the global RNG states are restored afterwards so
    data loading never perturbs the trainer's random streams.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item):
        if not isinstance(item, tuple):
            return self.dataset[item]
        index, seed = item
        if get_worker_info() is not None:  # worker process: its global RNG is ours to set
            return self._seeded(index, seed)
        states = torch.get_rng_state(), random.getstate(), np.random.get_state()
        try:
            return self._seeded(index, seed)
        finally:
            torch.set_rng_state(states[0])
            random.setstate(states[1])
            np.random.set_state(states[2])

    def _seeded(self, index: int, seed: int):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % (1 << 32))
        return self.dataset[index]
