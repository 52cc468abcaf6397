"""Frozen-feature extraction: the one forward loop of the kNN monitor and the benchmark protocols."""
from __future__ import annotations

import contextlib
from typing import Iterable, Optional, Tuple

import torch
from torch import nn

from ssl_zoo.utils.progress import track

__all__ = ["extract_features"]


@torch.no_grad()
def extract_features(model: nn.Module, batches: Iterable, device: torch.device, *,
                     amp_dtype: Optional[torch.dtype] = None,
                     channels_last: bool = False, desc: Optional[str] = None,
                     total: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` in eval mode over ``batches``; the module's train/eval mode is restored after.

    Args:
        model: maps images ``[B, 3, H, W]`` to features ``[B, D]`` (or ``[B, D, 1, 1]``).
        batches: yields ``(images [B, 3, H, W], labels [B], ...)``; extra items are ignored.
        device: where the forward passes run.
        amp_dtype: autocast dtype of the forward passes (None = float32).
        channels_last: feed the images in channels-last memory format.
        desc: show progress with ETA under this name (``ssl_zoo.utils.progress.track``); None = silent.
        total: number of batches, for the ETA when ``batches`` has no ``len``.

    Returns:
        ``(features [N, D] float32, labels [N] int64)``, both on ``device``, in batch order.
        Features are not normalised (kNN normalises them; linear probes must not).
    """
    was_training = model.training
    model.eval()
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
    feats, labels = [], []
    try:
        for batch in (track(batches, desc, total) if desc else batches):
            x = batch[0].to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast:
                feats.append(model(x).float().flatten(1))
            labels.append(torch.as_tensor(batch[1]).to(device, non_blocking=True).long())
    finally:
        model.train(was_training)
    if not feats:
        raise ValueError("extract_features: no batch to extract")
    return torch.cat(feats), torch.cat(labels)
