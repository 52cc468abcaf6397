"""A FIFO queue of keys, MoCo's dictionary (He et al. 2020, Sec. 3.2; PROTOCOLS.md s.8: 65,536 keys).

The queue is a ring buffer: ``keys[K, D]`` and a pointer to the oldest entry. Each step the
keys of the current (global) batch replace the oldest ones. Unlike the official code
(which asserts ``K % batch == 0``), any batch size works: writes wrap around the end of the
buffer, and a batch larger than the queue keeps its last K keys, so the content is always
that of enqueuing the keys one by one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssl_zoo.utils.dist_ops import concat_all_gather


class KeyQueue(nn.Module):
    """Ring buffer of L2-normalised keys (buffers, so it is checkpointed and moved with the model).

    Args:
        dim: key dimension D.
        size: number of keys K (MoCo: 65,536).
        gather_distributed: enqueue the keys of every process (MoCo's ``concat_all_gather``),
            so all processes hold the same queue.

    Attributes:
        keys: ``[K, D]`` buffer, initialised with random unit vectors (as MoCo).
        ptr: 0-dim long buffer, index of the next write (= the oldest key).

    Examples:
        >>> queue = KeyQueue(128, 65536)
        >>> loss = InfoNCELoss(0.2)(q, k, queue.keys); queue.enqueue(k)
    """

    def __init__(self, dim: int, size: int, gather_distributed: bool = True) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"queue size must be >= 1, got {size}")
        self.size = int(size)
        self.gather_distributed = gather_distributed
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write ``keys`` ``[B, D]`` (of every process) over the oldest entries, wrapping around."""
        if self.gather_distributed:
            keys = concat_all_gather(keys)
        n = keys.shape[0]
        m = min(n, self.size)  # only the last K of an oversized batch survive
        idx = (self.ptr + torch.arange(n - m, n, device=self.keys.device)) % self.size
        self.keys[idx] = keys[n - m :].to(self.keys.dtype)
        self.ptr.copy_((self.ptr + n) % self.size)

    def extra_repr(self) -> str:
        return f"size={self.size}, dim={self.keys.shape[1]}"
