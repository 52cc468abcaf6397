"""Helpers for (optionally) distributed training, after detectron2's ``utils/comm.py``.

Every function works without ``torch.distributed`` being initialised (one process):
the world size is then 1, the rank 0, and collectives are identities. ``get_local_rank``
reads ``LOCAL_RANK``, which both ``ssl_zoo.engine.launch`` and ``torchrun`` set.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List

import torch
import torch.distributed as dist


def is_dist_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if is_dist_initialized() else 1


def get_rank() -> int:
    return dist.get_rank() if is_dist_initialized() else 0


def get_local_rank() -> int:
    """Rank of this process on its machine (selects the GPU)."""
    if not is_dist_initialized():
        return 0
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main_process() -> bool:
    return get_rank() == 0


def synchronize() -> None:
    """Barrier over all processes (no-op with one process)."""
    if get_world_size() > 1:
        if dist.get_backend() == dist.Backend.NCCL and torch.cuda.is_available():
            # Without device_ids NCCL guesses the device from the rank, wrong on multi-node.
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def all_gather(obj: Any) -> List[Any]:
    """Gather any picklable object from every rank; returns a list indexed by rank.

    Tensors are moved to CPU by pickling, so this is for metadata / monitoring, not
    for gradients.
    """
    world = get_world_size()
    if world == 1:
        return [obj]
    out: List[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank."""
    if get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


@torch.no_grad()
def reduce_dict(input_dict: Dict[str, torch.Tensor], average: bool = True) -> Dict[str, torch.Tensor]:
    """All-reduce a dict of 0-dim tensors (same keys on every rank); every rank gets the result.

    Args:
        input_dict: name -> scalar tensor.
        average: divide the sum by the world size.
    """
    world = get_world_size()
    if world == 1 or not input_dict:
        return input_dict
    names = sorted(input_dict)
    values = torch.stack([input_dict[k].detach().float().reshape(()) for k in names])
    dist.all_reduce(values)
    if average:
        values /= world
    return dict(zip(names, values))
