"""Linear evaluation: a grid of linear classifiers trained at once on frozen features.

PROTOCOLS.md s.3 (BYOL App. C.1): cross-entropy, SGD with Nesterov momentum 0.9, batch
1024, 80 epochs, no weight decay, no feature normalisation, lr grid
{0.4, 0.3, 0.2, 0.1, 0.05} chosen on a validation split held out from train, cosine decay
of the lr (the official code). The encoder is frozen, so classifiers with different
learning rates are independent given the features: :class:`LinearHeads` holds all of them
as one ``[H, C, D]`` tensor, one encoder forward feeds every head, and
:class:`MultiLRSGD` steps them with one lr per head. The result equals H separate runs
(the same batches, same init), at the cost of one.

``train_heads`` is fed by a batch source, so the same loop serves the faithful mode (the
frozen encoder on freshly augmented images) and the fast mode (cached features).
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ssl_zoo.evaluation.metrics import topk_correct
from ssl_zoo.solver.schedules import cosine_factor
from ssl_zoo.utils import comm

__all__ = ["LinearHeads", "MultiLRSGD", "train_heads", "head_accuracy", "select_best"]

# (features [b, D] float, labels [b] int64, sample weights [H, b] (1 = train on it) or None = all)
HeadBatch = Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]


class LinearHeads(nn.Module):
    """H independent linear classifiers ``[B, D] -> [H, B, C]``.

    Initialisation: weights ~ N(0, 0.01^2), biases 0 (as DINO's / MoCo's linear probes), drawn
    from ``seed`` so every head of every run starts from the same matrix.
    """

    def __init__(self, dim: int, num_classes: int, num_heads: int, init_std: float = 0.01, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(num_classes, dim, generator=g) * init_std
        self.weight = nn.Parameter(w.expand(num_heads, -1, -1).clone())  # [H, C, D]
        self.bias = nn.Parameter(torch.zeros(num_heads, num_classes))  # [H, C]

    @property
    def num_heads(self) -> int:
        return self.weight.shape[0]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``[B, D] -> [H, B, C]`` logits (float32)."""
        return torch.einsum("bd,hcd->hbc", features.float(), self.weight) + self.bias[:, None, :]


class MultiLRSGD:
    """SGD with (Nesterov) momentum where slice h of every parameter has its own lr.

    Exactly ``torch.optim.SGD`` (dampening 0, ``buf = m * buf + g``, first step ``buf = g``;
    Nesterov ``d = g + m * buf``; ``p -= lr * d``; coupled weight decay ``g += wd * p``)
    applied to each head with its own ``lr_h``: parameters have the head as dimension 0.
    """

    def __init__(self, params: Sequence[nn.Parameter], lrs: Sequence[float], momentum: float = 0.9,
                 nesterov: bool = True, weight_decay: float = 0.0) -> None:
        self.params = list(params)
        self.base_lrs = torch.tensor([float(x) for x in lrs], dtype=torch.float32)
        self.momentum, self.nesterov, self.weight_decay = float(momentum), bool(nesterov), float(weight_decay)
        self.bufs: List[Optional[torch.Tensor]] = [None] * len(self.params)
        for p in self.params:
            if p.shape[0] != len(self.base_lrs):
                raise ValueError(f"parameter of shape {tuple(p.shape)} has no head dimension of size {len(self.base_lrs)}")

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lr_factor: float = 1.0) -> None:
        """One step at lr ``lr_factor * lrs[h]`` for head h."""
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad.add(p, alpha=self.weight_decay) if self.weight_decay else p.grad
            if self.momentum:
                buf = self.bufs[i]
                buf = g.clone() if buf is None else buf.mul_(self.momentum).add_(g)
                self.bufs[i] = buf
                g = g.add(buf, alpha=self.momentum) if self.nesterov else buf
            lr = (self.base_lrs.to(p.device) * lr_factor).view(-1, *([1] * (p.dim() - 1)))
            p.sub_(lr * g)


def train_heads(heads: LinearHeads, lrs: Sequence[float], epoch_batches: Callable[[int], Iterable[HeadBatch]],
                epochs: int, steps_per_epoch: int, *, momentum: float = 0.9, nesterov: bool = True,
                weight_decay: float = 0.0, sync: bool = True,
                log: Optional[Callable[[str], None]] = None) -> LinearHeads:
    """Train every head for ``epochs`` epochs with a per-step cosine lr decay.

    Args:
        heads: H heads; ``lrs[h]`` is head h's peak lr.
        epoch_batches: ``epoch -> iterable of (features [b, D], labels [b], weights [H, b] or None)``;
            head h trains on the samples with weight 1 (the held-out validation samples
            have weight 0 for the selection heads). In multi-process runs each process
            passes its slice; gradients are summed over processes and every loss is
            normalised by the global number of samples of its head.
        steps_per_epoch: batches per epoch (for the schedule).
        sync: sum gradients over processes (False when every process sees all the data).
    """
    opt = MultiLRSGD(heads.parameters(), lrs, momentum, nesterov, weight_decay)
    total, step = epochs * steps_per_epoch, 0
    world = comm.get_world_size() if sync else 1
    for epoch in range(epochs):
        loss_sum, seen = torch.zeros(()), 0  # summed on the device: no host sync per step
        for features, labels, weights in epoch_batches(epoch):
            logits = heads(features)  # [H, b, C]
            ce = F.cross_entropy(logits.flatten(0, 1), labels.repeat(heads.num_heads), reduction="none")
            ce = ce.view(heads.num_heads, -1)
            w = torch.ones_like(ce) if weights is None else weights.to(ce)
            count = w.sum(1)
            if world > 1:
                torch.distributed.all_reduce(count)
            loss = (ce * w).sum(1).div(count.clamp_min(1)).sum()  # heads are independent: sum
            opt.zero_grad()
            loss.backward()
            if world > 1:
                for p in heads.parameters():
                    torch.distributed.all_reduce(p.grad)
            opt.step(cosine_factor(step, total))
            step += 1
            loss_sum, seen = loss_sum.to(loss.device) + loss.detach() / heads.num_heads, seen + 1
        if log is not None and (epoch + 1) % max(1, epochs // 8) == 0:
            log(f"epoch {epoch + 1}/{epochs}: mean head loss {loss_sum.item() / max(seen, 1):.4f}")
    return heads


@torch.no_grad()
def head_accuracy(heads: LinearHeads, features: torch.Tensor, labels: torch.Tensor,
                  chunk: int = 8192) -> Dict[str, torch.Tensor]:
    """Top-1 / top-5 accuracy in percent of every head: ``{"top1": [H], "top5": [H]}``."""
    correct1 = torch.zeros(heads.num_heads)
    correct5 = torch.zeros(heads.num_heads)
    for s in range(0, features.shape[0], chunk):
        top1, top5 = topk_correct(heads(features[s:s + chunk]), labels[s:s + chunk])  # logits [H, b, C]
        correct1 += top1.float().cpu()
        correct5 += top5.float().cpu()
    n = max(features.shape[0], 1)
    return {"top1": 100.0 * correct1 / n, "top5": 100.0 * correct5 / n}


def select_best(val_top1: Sequence[float], candidates: Sequence) -> Tuple[int, object]:
    """Index and value of the candidate with the best validation top-1 (first on ties)."""
    best = max(range(len(candidates)), key=lambda i: (float(val_top1[i]), -i))
    return best, candidates[best]
