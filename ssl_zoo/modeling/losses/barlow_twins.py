"""Barlow Twins' redundancy-reduction loss (Zbontar et al. 2021, Eq. 1-2).

With z^A, z^B ``[N, D]`` the projections of the two views, each standardised per dimension
over the batch (mean 0, std 1; BN without affine, biased variance), the cross-correlation
``C = z^A^T z^B / N`` ``[D, D]`` is pushed towards the identity::

    L = sum_i (1 - C_ii)^2 + lambda sum_i sum_{j != i} C_ij^2,    lambda = 0.0051 (official code)

In multi-process training the projections are gathered with gradient, so every process
computes C (and L) on the GLOBAL batch; with DDP's gradient averaging the gradients equal
the single-process ones. Deliberate deviation from the official ``main.py``, which sums the
per-process C with ``torch.distributed.all_reduce`` (no autograd): there, each process
back-propagates only its own share, and after DDP's averaging the gradient is 1/W of the
true one for W processes (facebookresearch/barlowtwins#8). Under LARS the trust ratio hides
this for weights, but the excluded biases / BN parameters move W times less per step there.
"""
from __future__ import annotations

import torch
from torch import nn

from ssl_zoo.modeling.losses.ntxent import gather_rows, upcast


class BarlowTwinsLoss(nn.Module):
    """Cross-correlation to identity.

    Args:
        lambd: weight of the off-diagonal (redundancy) term (0.0051).
        eps: added to the variance when standardising (BatchNorm1d's 1e-5).
        gather_distributed: compute C over the global batch.

    Shapes:
        z1, z2: ``[B, D]`` projector outputs of view 1 / 2. Output: scalar.
    """

    def __init__(self, lambd: float = 0.0051, eps: float = 1e-5, gather_distributed: bool = True) -> None:
        super().__init__()
        self.lambd, self.eps = float(lambd), float(eps)
        self.gather_distributed = gather_distributed

    def _standardise(self, z: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(z, dim=0, correction=0)
        return (z - mean) / torch.sqrt(var + self.eps)

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        z1, _ = gather_rows(upcast(z1), self.gather_distributed)
        z2, _ = gather_rows(upcast(z2), self.gather_distributed)
        c = self._standardise(z1).t() @ self._standardise(z2) / z1.shape[0]  # [D, D]
        diag = torch.diagonal(c)
        on_diag = (1.0 - diag).pow(2).sum()
        off_diag = c.pow(2).sum() - diag.pow(2).sum()
        return on_diag + self.lambd * off_diag
