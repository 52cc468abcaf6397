"""Run an op on only the samples of a batch that draw it (shared by the colour ops and the views)."""
from __future__ import annotations

from typing import Callable

from torch import Tensor

__all__ = ["apply_where"]


def apply_where(x: Tensor, mask: Tensor, fn: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """``x[mask] = fn(x[mask], idx)`` without touching the other samples; returns x.

    The indices are computed on ``mask``'s device (CPU when the generator is on CPU, so
    no device sync) and only the selected samples are processed.

    Args:
        x: ``[B, ...]``; may be overwritten.
        mask: bool ``[B]``.
        fn: ``(x_selected [n, ...], idx int64 [n] on mask's device) -> [n, ...]`` (may work in place).
    """
    idx = mask.nonzero().squeeze(1)
    n = idx.numel()
    if n == 0:
        return x
    if n == x.shape[0]:
        return fn(x, idx)
    idx_dev = idx.to(x.device)
    return x.index_copy_(0, idx_dev, fn(x.index_select(0, idx_dev), idx))
