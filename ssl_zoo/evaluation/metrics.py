"""Top-k accuracy counts shared by the kNN, linear and fine-tuning evaluations."""
from __future__ import annotations

from typing import Tuple

import torch

__all__ = ["topk_correct"]


def topk_correct(scores: torch.Tensor, labels: torch.Tensor, k: int = 5) -> Tuple[torch.Tensor, torch.Tensor]:
    """How many samples have their label as the best score, and among the ``k`` best.

    Args:
        scores: ``[..., N, C]`` class scores (leading dims, e.g. one per linear head).
        labels: ``[N]`` int64.
        k: top-k (clipped to C, so top-5 = top-C when C < 5).

    Returns:
        ``(top-1 count, top-k count)``, int64 tensors of shape ``[...]``.
    """
    top = scores.topk(min(k, scores.shape[-1]), dim=-1).indices
    hit = top == labels.to(top.device)[:, None]
    return hit[..., 0].sum(-1), hit.any(-1).sum(-1)
