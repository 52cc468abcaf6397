"""SimSiam's symmetric negative cosine similarity (Chen & He 2021, Eq. 1-4).

    D(p, z) = -cos(p, stopgrad(z))
    L = D(p1, z2) / 2 + D(p2, z1) / 2        (minimum -1)

The stop-gradient on z is the whole point (without it SimSiam collapses, Sec. 4.1): it is
applied here, as :class:`BYOLLoss` does for the target projections.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssl_zoo.modeling.losses.ntxent import upcast


class NegativeCosineLoss(nn.Module):
    """``-(cos(p1, sg z2) + cos(p2, sg z1)) / 2``, each cosine averaged over the batch.

    Shapes:
        p1, p2: ``[B, D]`` predictions of view 1 / 2; z1, z2: ``[B, D]`` projections.
        Output: scalar in ``[-1, 1]``.
    """

    def forward(self, p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        def d(p, z):
            return -F.cosine_similarity(upcast(p), upcast(z.detach()), dim=-1).mean()

        return 0.5 * d(p1, z2) + 0.5 * d(p2, z1)
