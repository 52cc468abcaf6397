"""Tensor collectives for losses that need the whole global batch (SimCLR, MoCo, Barlow Twins).

Every function is the identity when ``torch.distributed`` is not initialised (one process).
All of them assume the same batch size on every rank (``DATALOADER.DROP_LAST True``).

Gradient convention of :func:`all_gather_with_grad` (SimCLR's ``GatherLayer``): the backward
pass all-reduces (sums) the gradient of the gathered tensor over ranks and returns this rank's
slice. If rank r computes a loss ``L_r`` from the gathered tensor, every local input then
receives ``d(sum_r L_r)/dx``; DDP's gradient averaging divides by the world size W, so training
follows ``(1/W) sum_r L_r``. With ``L_r`` the mean over rank r's anchors, that is the mean over
the global batch: exactly the single-process loss on the full batch (tests/test_contrastive.py).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.distributed as dist

from ssl_zoo.utils.comm import get_rank, get_world_size

__all__ = ["all_gather_with_grad", "concat_all_gather", "batch_shuffle", "batch_unshuffle"]


class _AllGatherWithGrad(torch.autograd.Function):
    """``[B, ...]`` per rank -> ``[W*B, ...]`` in rank order; backward = all-reduce + own slice."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        chunks = [torch.empty_like(x) for _ in range(get_world_size())]
        dist.all_gather(chunks, x)
        ctx.rank, ctx.batch = get_rank(), x.shape[0]
        return torch.cat(chunks)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # sum over ranks of d L_r / d gathered
        return grad[ctx.rank * ctx.batch : (ctx.rank + 1) * ctx.batch]


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` ``[B, ...]`` from every rank (rank order) with gradients flowing back.

    This rank's rows are ``out[rank * B : (rank + 1) * B]``. Identity with one process.
    Every rank must run the backward pass (it is a collective), as in DDP training.
    """
    if get_world_size() == 1:
        return x
    return _AllGatherWithGrad.apply(x)


@torch.no_grad()
def concat_all_gather(x: torch.Tensor) -> torch.Tensor:
    """``[B, ...]`` per rank -> ``[W*B, ...]`` without gradient (MoCo keys, shuffle indices)."""
    world = get_world_size()
    if world == 1:
        return x
    x = x.contiguous()
    chunks = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(chunks, x)
    return torch.cat(chunks)


@torch.no_grad()
def batch_shuffle(x: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """MoCo's shuffling BN (He et al. 2020, Sec. 3.3): give this rank a random slice of the global batch.

    The key encoder then computes its BN statistics on a different subset of images than the
    query encoder, so BN cannot leak which key is the positive ("cheating").

    Args:
        x: ``[B, ...]`` this rank's inputs of the key encoder.

    Returns:
        ``(x_shuffled [B, ...], idx_unshuffle [W*B])``; ``(x, None)`` with one process.
    """
    world = get_world_size()
    if world == 1:
        return x, None
    x_all = concat_all_gather(x)
    idx_shuffle = torch.randperm(x_all.shape[0], device=x.device)
    dist.broadcast(idx_shuffle, src=0)  # one permutation for all ranks
    idx_unshuffle = torch.argsort(idx_shuffle)
    return x_all[idx_shuffle.view(world, -1)[get_rank()]], idx_unshuffle


@torch.no_grad()
def batch_unshuffle(x: torch.Tensor, idx_unshuffle: Optional[torch.Tensor]) -> torch.Tensor:
    """Undo :func:`batch_shuffle` on the key encoder's outputs ``[B, ...]``."""
    if idx_unshuffle is None:
        return x
    x_all = concat_all_gather(x)
    return x_all[idx_unshuffle.view(get_world_size(), -1)[get_rank()]]
