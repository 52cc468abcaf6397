"""InfoNCE with a key queue, MoCo's loss (He et al. 2020, Eq. 1; Chen et al. 2020 "MoCo v2").

For a query q, its positive key k+ (same image, other view, key encoder) and K negative
keys from the queue, all L2-normalised, with temperature T::

    L_q = -log exp(q.k+ / T) / ( exp(q.k+ / T) + sum_{k in queue} exp(q.k / T) )

i.e. a (K+1)-way cross entropy whose label is always 0 (the positive is column 0).
T = 0.07 in MoCo v1, 0.2 in MoCo v2 (PROTOCOLS.md s.8).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssl_zoo.modeling.losses.ntxent import upcast


class InfoNCELoss(nn.Module):
    """Query / positive key / queue-of-negatives cross entropy.

    Keys and the queue get no gradient (key encoder and memory are not trained by
    back-propagation in MoCo); they are detached here.

    Args:
        temperature: T (MoCo v2 0.2, v1 0.07).

    Shapes:
        q: ``[B, D]`` queries (online encoder), k: ``[B, D]`` positive keys,
        queue: ``[K, D]`` negative keys (already normalised, as MoCo stores them).
        Output: scalar, mean over the B queries.

    Examples:
        >>> loss = InfoNCELoss(0.2)(q, k, queue.keys)
    """

    def __init__(self, temperature: float = 0.2) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def forward(self, q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor) -> torch.Tensor:
        q = F.normalize(upcast(q), dim=1)
        k = F.normalize(upcast(k.detach()), dim=1)
        l_pos = (q * k).sum(dim=1, keepdim=True)  # [B, 1]
        # clone: the queue buffer is overwritten in place by the enqueue after this forward.
        l_neg = q @ queue.detach().to(q.dtype).clone().t()  # [B, K]
        logits = torch.cat([l_pos, l_neg], dim=1) / self.temperature
        labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
        return F.cross_entropy(logits, labels)
