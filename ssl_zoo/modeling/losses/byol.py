"""BYOL's regression loss (Grill et al. 2020, Eq. 2 and Sec. 3.1; PROTOCOLS.md s.2).

    L(p, z') = || p / ||p|| - z' / ||z'|| ||^2 = 2 - 2 cos(p, z')

with p = q(g(f(v))) the online prediction and z' = g'(f'(v')) the target projection,
under stop-gradient. The loss is symmetrised by swapping the views and the two terms
are **summed**: L_total = L(p1, sg(z2)) + L(p2, sg(z1)).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn



def normalized_mse(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Squared distance of the L2-normalised vectors, ``2 - 2 cos(p, z)`` per sample.

    Half-precision inputs are computed in float32: the loss is a difference of
    numbers close to 2 and bf16 cannot resolve it.

    Args:
        p: ``[B, D]`` predictions.
        z: ``[B, D]`` targets (not detached here; see :class:`BYOLLoss`).

    Returns:
        ``[B]`` values in ``[0, 4]``.
    """
    if p.dtype in (torch.float16, torch.bfloat16):
        p = p.float()
    if z.dtype in (torch.float16, torch.bfloat16):
        z = z.float()
    # Same eps as BYOL's code (l2_normalize with epsilon 1e-12).
    cos = (F.normalize(p, dim=-1, eps=1e-12) * F.normalize(z, dim=-1, eps=1e-12)).sum(dim=-1)
    return 2.0 - 2.0 * cos


class BYOLLoss(nn.Module):
    """Symmetric BYOL loss: ``mean_b nmse(p1, sg(z2)) + mean_b nmse(p2, sg(z1))``.

    The two directional terms are SUMMED, as in the paper and the official code
    (PROTOCOLS.md s.2). Averaging them instead (lightly's former bug) halves the
    gradient, which with LARS and the BYOL learning rate cost ~11 ImageNet points.
    The stop-gradient on the targets is applied here (``detach``), so passing
    target-network outputs that still carry a graph cannot leak gradient into them.

    Shapes:
        p1, p2: ``[B, D]`` online predictions of view 1 and view 2.
        z1, z2: ``[B, D]`` target projections of view 1 and view 2.
        Output: scalar in ``[0, 8]``.

    Examples:
        >>> loss = BYOLLoss()(q(g(f(v1))), q(g(f(v2))), g_t(f_t(v1)), g_t(f_t(v2)))
    """

    def forward(self, p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return normalized_mse(p1, z2.detach()).mean() + normalized_mse(p2, z1.detach()).mean()
