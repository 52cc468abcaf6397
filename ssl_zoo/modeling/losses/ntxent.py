"""NT-Xent, SimCLR's contrastive loss (Chen et al. 2020, Eq. 1; PROTOCOLS.md s.8).

For 2N views of N images (z_k and z_{k+N} are the two views of image k), with
sim = cosine similarity and temperature T::

    l(i, j) = -log exp(sim(z_i, z_j)/T) / sum_{k != i} exp(sim(z_i, z_k)/T)
    L = 1/(2N) sum_k [ l(k, k+N) + l(k+N, k) ]            (the paper, ``sum_directions=False``)
    L = 1/N    sum_k [ l(k, k+N) + l(k+N, k) ]            (the official code, ``sum_directions=True``)

The official TF code (``tf2/objective.py::add_contrastive_loss``) returns
``reduce_mean(loss_a + loss_b)``, twice the paper's mean. The scale matters: under LARS the
trust ratio cancels it for weights, but BN and bias parameters (excluded from adaptation) run
plain momentum SGD, so the paper's mean trains them at half the official effective lr.

In multi-process training the candidates (positives and negatives) are the views of the
GLOBAL batch, gathered with :func:`ssl_zoo.utils.dist_ops.all_gather_with_grad`; each rank
averages over its own 2B anchors, whose rows in the gathered batch start at ``rank * B``.
With DDP's gradient averaging this is exactly the single-process loss on the global batch.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ssl_zoo.utils.comm import get_rank, get_world_size
from ssl_zoo.utils.dist_ops import all_gather_with_grad


def upcast(x: torch.Tensor) -> torch.Tensor:
    """float16 / bfloat16 -> float32 (softmaxes over many candidates); other dtypes unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def gather_rows(x: torch.Tensor, gather: bool) -> Tuple[torch.Tensor, int]:
    """``(global batch [N, D], offset of this rank's rows)``; ``(x, 0)`` without gathering."""
    if not gather or get_world_size() == 1:
        return x, 0
    return all_gather_with_grad(x), get_rank() * x.shape[0]


class NTXentLoss(nn.Module):
    """Normalised temperature-scaled cross entropy over both views of a (global) batch.

    Args:
        temperature: T (0.1 at batch 4096, 0.5 at small batch; SimCLR Table 5 / App. B.9).
        gather_distributed: use the views of every process as candidates (SimCLR's
            global negatives); False = local negatives only.
        sum_directions: True = the official code's scale, the mean over images of the two
            directions' sum (2x the paper's mean over 2N anchors, the default here).

    Shapes:
        z1, z2: ``[B, D]`` projections of view 1 and view 2 (any scale: normalised here).
        Output: scalar, the mean over this process's 2B anchors (x 2 with ``sum_directions``).

    Examples:
        >>> loss = NTXentLoss(0.5)(projector(backbone(v1)), projector(backbone(v2)))
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = True, sum_directions: bool = False) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.gather_distributed = gather_distributed
        self.sum_directions = bool(sum_directions)

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        # float32: the softmax over thousands of candidates is not resolved in bf16.
        z1, z2 = F.normalize(upcast(z1), dim=1), F.normalize(upcast(z2), dim=1)
        b = z1.shape[0]
        z1_all, offset = gather_rows(z1, self.gather_distributed)
        z2_all, _ = gather_rows(z2, self.gather_distributed)
        n = z1_all.shape[0]
        anchors = torch.cat([z1, z2])  # [2B, D]
        candidates = torch.cat([z1_all, z2_all])  # [2N, D]: view-1 rows, then view-2 rows
        logits = anchors @ candidates.t() / self.temperature  # [2B, 2N]
        local = torch.arange(b, device=z1.device) + offset
        self_idx = torch.cat([local, local + n])  # each anchor's own column: excluded (k != i)
        pos_idx = torch.cat([local + n, local])  # the other view of the same image
        rows = torch.arange(2 * b, device=z1.device)
        self_mask = torch.zeros_like(logits, dtype=torch.bool)
        self_mask[rows, self_idx] = True
        logits = logits.masked_fill(self_mask, float("-inf"))
        loss = F.cross_entropy(logits, pos_idx)
        return 2.0 * loss if self.sum_directions else loss
