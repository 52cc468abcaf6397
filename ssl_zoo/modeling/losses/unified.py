"""BYOL's unified objective (Grill et al. 2020, Sec. 5 / App. F, Table 5b; PROTOCOLS.md s.7).

The paper maximises, for views v_i, v'_i of B images, S(u1, u2) = cos(phi(u1), psi(u2))::

    InfoNCE^{alpha,beta} = 2/B sum_i S(v_i, v'_i)
        - beta 2 alpha / B sum_i ln( sum_{j != i} exp(S(v_i, v_j)/alpha) + sum_j exp(S(v_i, v'_j)/alpha) )

This module MINIMISES, per direction, ``2 - InfoNCE^{alpha,beta}`` and sums the two
directions (v -> v' and v' -> v), so that

- beta = 0, phi = predictor(z_theta), psi = z_xi: exactly :class:`BYOLLoss`
  (2 - 2 cos = normalised MSE, summed over the two directions);
- beta = 1, phi = psi = z_theta: ``4 + 4 alpha * NTXent(T = alpha)`` (SimCLR up to scale).

No stop-gradient is applied here: pass target-network outputs (computed under no_grad) as
psi for BYOL, or the online projections (with gradient) for SimCLR. With beta > 0 the
negatives psi are gathered from every process (:func:`all_gather_with_grad`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssl_zoo.modeling.losses.ntxent import gather_rows, upcast


class UnifiedLoss(nn.Module):
    """``2 - InfoNCE^{alpha,beta}`` per direction, summed over both directions.

    Args:
        alpha: temperature of the negatives' term (Table 5b: 0.1).
        beta: weight of the negatives (0 = BYOL, 1 = SimCLR-style).
        gather_distributed: negatives from the global batch.

    Shapes:
        phi1, phi2: ``[B, D]`` online outputs (predictions, or projections) of view 1 / 2.
        psi1, psi2: ``[B, D]`` targets of view 1 / 2 (target projections, or online ones).
        Output: scalar.
    """

    def __init__(self, alpha: float = 0.1, beta: float = 0.0, gather_distributed: bool = True) -> None:
        super().__init__()
        if alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        self.alpha, self.beta = float(alpha), float(beta)
        self.gather_distributed = gather_distributed

    def _direction(self, phi: torch.Tensor, psi_same: torch.Tensor, psi_other: torch.Tensor) -> torch.Tensor:
        """``2 - InfoNCE`` with anchors phi(v_i), positives psi(v'_i), negatives psi(v_j), psi(v'_j)."""
        pos = (phi * psi_other).sum(dim=1)  # S(v_i, v'_i)
        loss = 2.0 - 2.0 * pos.mean()
        if self.beta == 0.0:
            return loss
        same_all, offset = gather_rows(psi_same, self.gather_distributed)
        other_all, _ = gather_rows(psi_other, self.gather_distributed)
        b = phi.shape[0]
        s_same = phi @ same_all.t()  # [B, N]: S(v_i, v_j)
        s_other = phi @ other_all.t()  # [B, N]: S(v_i, v'_j), includes the positive
        rows = torch.arange(b, device=phi.device)
        self_mask = torch.zeros_like(s_same, dtype=torch.bool)
        self_mask[rows, rows + offset] = True  # j != i
        logits = torch.cat([s_same.masked_fill(self_mask, float("-inf")), s_other], dim=1) / self.alpha
        return loss + self.beta * 2.0 * self.alpha * torch.logsumexp(logits, dim=1).mean()

    def forward(self, phi1: torch.Tensor, phi2: torch.Tensor, psi1: torch.Tensor, psi2: torch.Tensor) -> torch.Tensor:
        phi1, phi2, psi1, psi2 = (F.normalize(upcast(t), dim=1, eps=1e-12) for t in (phi1, phi2, psi1, psi2))
        return self._direction(phi1, psi1, psi2) + self._direction(phi2, psi2, psi1)
