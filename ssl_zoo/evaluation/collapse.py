"""Signals of representation collapse, computed from a batch of embeddings ``z [B, d]``.

- ``normalized_std``: std over the batch of the L2-normalised embeddings, averaged over
  dimensions (SimSiam, Chen & He 2021, Sec. 4.1 / Fig. 2): about ``1/sqrt(d)`` when the
  outputs spread over the unit sphere, 0 when they collapse to one point.
- ``effective_rank``: ``exp(H(p))`` with ``p`` the singular values normalised to sum 1
  (Roy & Vetterli 2007; RankMe, Garrido et al. 2023, which uses uncentred embeddings as
  here): between 1 (rank-one, dimensional collapse) and ``min(B, d)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def normalized_std(z: torch.Tensor) -> torch.Tensor:
    """Mean over dimensions of the per-dimension std of ``z / ||z||`` (``z [B, d]``, B >= 2); 0-dim tensor."""
    return F.normalize(z.detach().float().flatten(1), dim=1).std(dim=0).mean()


@torch.no_grad()
def effective_rank(z: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """``exp(-sum_i p_i log p_i)``, ``p = sigma / sum(sigma)`` of ``z [B, d]``; 0-dim tensor."""
    s = torch.linalg.svdvals(z.detach().float().flatten(1))
    p = s / s.sum().clamp_min(eps) + eps
    return (-(p * p.log()).sum()).exp()
