"""Data loading and the fine-tuning loop shared by the dense tasks.

The whole network (backbone + head) is fine-tuned with SGD + momentum, weight decay on
every parameter, and :func:`~ssl_zoo.benchmark.dense.schedule.step_lr`. With several
processes the model runs in DDP with synchronised BatchNorm and every process draws
``batch_size / world_size`` images per step from its own shard of an endless shuffle.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Dict, Iterator, Optional, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from ssl_zoo.benchmark.dense.schedule import step_lr
from ssl_zoo.modeling.batchnorm import convert_sync_batchnorm
from ssl_zoo.utils import comm

logger = logging.getLogger(__name__)

__all__ = ["InfiniteShardSampler", "train_loader", "eval_loader", "distribute", "finetune"]


class InfiniteShardSampler(Sampler):
    """Endless epochs of a seeded permutation; process ``rank`` takes every ``world``-th index."""

    def __init__(self, size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        if size <= 0:
            raise ValueError("cannot sample from an empty dataset")
        self.size, self.seed, self.rank, self.world = size, seed, rank, world

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed)
        while True:
            yield from torch.randperm(self.size, generator=g)[self.rank::self.world].tolist()


def train_loader(dataset: Dataset, batch_size: int, seed: int, num_workers: int) -> DataLoader:
    """Endless loader of ``batch_size / world_size`` samples per process (a global batch of ``batch_size``)."""
    world = comm.get_world_size()
    if batch_size % world:
        raise ValueError(f"batch size {batch_size} is not divisible by the {world} processes")
    sampler = InfiniteShardSampler(len(dataset), seed, comm.get_rank(), world)
    return DataLoader(dataset, batch_size=batch_size // world, sampler=sampler, num_workers=num_workers,
                      drop_last=True, persistent_workers=num_workers > 0,
                      generator=torch.Generator().manual_seed(seed + comm.get_rank()))


def eval_loader(dataset: Dataset, batch_size: int, num_workers: int) -> DataLoader:
    """This process's share (every ``world``-th sample) of ``dataset``, in order, each sample once."""
    idx = list(range(comm.get_rank(), len(dataset), comm.get_world_size()))
    return DataLoader(torch.utils.data.Subset(dataset, idx), batch_size=batch_size, shuffle=False,
                      num_workers=num_workers)


def distribute(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` on ``device``; in DDP with SyncBN when several processes run."""
    model.to(device)
    if comm.get_world_size() > 1:
        model = convert_sync_batchnorm(model)
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return model


def finetune(model: nn.Module, loader: DataLoader, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *,
             iters: int, base_lr: float, weight_decay: float, momentum: float = 0.9,
             lr_steps: Sequence[float] = (0.7, 0.9), device: torch.device, amp_dtype: Optional[torch.dtype] = None,
             log_period: int = 50, desc: str = "") -> Dict[str, float]:
    """Train ``model`` for ``iters`` SGD steps on batches ``(inputs, targets)`` of ``loader``.

    ``loss_fn(outputs, targets)`` runs in float32 outside autocast. Returns ``seconds``,
    ``iters_per_s`` (steps per second, data loading included) and ``last_loss`` (mean of the
    last ``log_period`` steps).
    """
    opt = torch.optim.SGD(model.parameters(), lr=base_lr, momentum=momentum, weight_decay=weight_decay)
    model.train()
    batches = iter(loader)
    recent = torch.zeros((), device=device)
    n_recent = 0
    start = time.perf_counter()
    last = float("nan")
    for it in range(iters):
        lr = step_lr(base_lr, it, iters, lr_steps)
        for g in opt.param_groups:
            g["lr"] = lr
        inputs, targets = next(batches)
        inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            outputs = model(inputs)
        loss = loss_fn(outputs.float(), targets)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: loss is {loss.item()} at iteration {it} (lr {lr:g}); lower the lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        recent += loss.detach()
        n_recent += 1
        if (it + 1) % log_period == 0 or it + 1 == iters:
            last = (recent / n_recent).item()  # one host sync per log period
            logger.info(f"{desc} iter {it + 1}/{iters}: loss {last:.4f}, lr {lr:.4g}, "
                        f"{(it + 1) / (time.perf_counter() - start):.2f} it/s")
            recent.zero_()
            n_recent = 0
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "iters_per_s": iters / max(seconds, 1e-9), "last_loss": last}
