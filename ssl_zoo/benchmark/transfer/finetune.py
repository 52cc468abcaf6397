"""The fine-tuning transfer protocol (PROTOCOLS.md s.5, BYOL App. D; Kornblith et al. 2019).

The whole network plus a new linear layer is trained with SGD (Nesterov momentum 0.9), batch
256, for 20,000 steps with a cosine-decayed learning rate (Kornblith et al.; ssl-transfer uses
the same schedule), on random resized crops + flips. For every (lr, wd) of the grid (7 lrs
log-spaced in [1e-4, 0.1] x {0} + 7 wds log-spaced in [1e-6, 1e-3]) a model is trained on
train and scored on val; the chosen pair is retrained on train + val and scored on test once.

* The weight decay is divided by the lr (PROTOCOLS.md s.5; torch's SGD multiplies it by the lr
  again, so the decay per step is ``wd`` whatever the lr).
* BatchNorm: the paper's TF decay ``max(1 - 10/s, 0.9)`` (s = steps per epoch) is torch's
  ``momentum = 1 - decay = min(10/s, 0.1)`` (a translation trap: not ``max(1 - 10/s, 0.9)``).
* Multi-label sets (VOC2007) use a per-class binary cross-entropy without the ignored
  ("difficult only") pairs.
"""
from __future__ import annotations

import copy
import itertools
import logging
import math
import time
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ssl_zoo.benchmark.transfer.metrics import score_fn

logger = logging.getLogger(__name__)

__all__ = ["FinetuneConfig", "bn_momentum", "finetune_grid", "train_finetune", "run_finetune_transfer"]


@dataclass
class FinetuneConfig:
    """``BENCHMARK.TRANSFER.FINETUNE`` (or its reduced ``--budget small`` version)."""

    lrs: Sequence[float]
    weight_decays: Sequence[float]
    steps: int = 20000
    batch_size: int = 256
    momentum: float = 0.9
    seed: int = 0
    budget: str = "full"


def bn_momentum(steps_per_epoch: int) -> float:
    """torch BN momentum of the paper's TF decay ``max(1 - 10/s, 0.9)``: ``min(10/s, 0.1)``."""
    return min(10.0 / max(steps_per_epoch, 1), 0.1)


def finetune_grid(c: FinetuneConfig) -> List[Tuple[float, float]]:
    """Every (lr, wd) pair of the grid."""
    return [(float(lr), float(wd)) for lr, wd in itertools.product(c.lrs, c.weight_decays)]


class _Classifier(nn.Module):
    """Backbone + a new linear layer (zero-initialised): ``[B, 3, S, S] -> [B, C]``."""

    def __init__(self, backbone: nn.Module, dim: int, num_classes: int) -> None:
        super().__init__()
        self.backbone, self.fc = backbone, nn.Linear(dim, num_classes)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x).flatten(1).float())


def _loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if y.dim() == 1:
        return F.cross_entropy(logits, y)
    mask = (y != 0).float()
    bce = F.binary_cross_entropy_with_logits(logits, (y > 0).float(), reduction="none")
    return (bce * mask).sum() / mask.sum().clamp_min(1.0)


def _batches(dataset: Dataset, batch_size: int, seed: int, num_workers: int):
    """Endless shuffled batches (a new permutation each epoch, seeded)."""
    for epoch in itertools.count():
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=g, drop_last=len(dataset) > batch_size,
                            num_workers=num_workers)
        yield from loader


def train_finetune(backbone: nn.Module, dim: int, num_classes: int, train: Dataset, targets: torch.Tensor, lr: float,
                   wd: float, c: FinetuneConfig, device: torch.device, num_workers: int = 0) -> nn.Module:
    """Fine-tune a copy of ``backbone`` + a new head on ``train`` (its items ``(image, index)``).

    Args:
        targets: labels of ``train`` by index (int64 ``[N]`` or int8 ``[N, C]``).
        lr, wd: peak learning rate and the grid's weight decay (passed to SGD as ``wd / lr``).
    """
    torch.manual_seed(c.seed)
    model = _Classifier(copy.deepcopy(backbone), dim, num_classes).to(device).train()
    for p in model.parameters():
        p.requires_grad_(True)
    momentum = bn_momentum(math.ceil(len(train) / c.batch_size))
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = momentum
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=c.momentum, nesterov=True, weight_decay=wd / lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, c.steps) / c.steps)))
    batches = _batches(train, min(c.batch_size, len(train)), c.seed, num_workers)
    for step in range(c.steps):
        x, idx = next(batches)
        loss = _loss(model(x.to(device, non_blocking=True)), targets[idx].to(device))
        if not torch.isfinite(loss):
            logger.warning(f"fine-tune lr {lr} wd {wd}: loss diverged at step {step}")
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % max(c.steps // 5, 1) == 0:
            logger.info(f"fine-tune lr {lr:.3g} wd {wd:.3g}: step {step + 1}/{c.steps}, loss {float(loss.detach()):.3f}")
    return model.eval()


@torch.no_grad()
def _scores(model: nn.Module, dataset: Dataset, batch_size: int, device: torch.device, num_workers: int) -> torch.Tensor:
    out = [model(x.to(device)).float().cpu() for x, _ in DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)]
    return torch.cat(out)


def run_finetune_transfer(backbone: nn.Module, dim: int, num_classes: int, data: Dict[str, Dataset],
                          targets: Dict[str, torch.Tensor], metric: str, c: FinetuneConfig, device: torch.device,
                          num_workers: int = 0, eval_batch: int = 256) -> Dict:
    """Grid on train / val, retrain the best on train + val, score test.

    Args:
        data: "train", "train+val" (augmenting transforms) and "val", "test" (test transform) datasets
            of ``(image, index)`` items.
        targets: "train", "train+val", "val", "test" -> targets by index.

    Returns:
        A result row.
    """
    t0 = time.perf_counter()
    score = score_fn(metric)
    grid, best = {}, None
    for lr, wd in finetune_grid(c):
        model = train_finetune(backbone, dim, num_classes, data["train"], targets["train"], lr, wd, c, device,
                               num_workers)
        val = float(score(_scores(model, data["val"], eval_batch, device, num_workers), targets["val"]))
        val = val if math.isfinite(val) else -1.0
        grid[f"lr={lr:.3g},wd={wd:.3g}"] = round(val, 3)
        logger.info(f"fine-tune lr {lr:.3g} wd {wd:.3g}: val {val:.2f}")
        if best is None or val > best[0]:
            best = (val, lr, wd)
    _, lr, wd = best
    model = train_finetune(backbone, dim, num_classes, data["train+val"], targets["train+val"], lr, wd, c, device,
                           num_workers)
    test = float(score(_scores(model, data["test"], eval_batch, device, num_workers), targets["test"]))
    return {"mode": "finetune", "score": test, "best_lr": lr, "best_wd": wd, "val_score": best[0],
            "val_score_grid": grid, "steps": c.steps, "budget": c.budget, "seconds": time.perf_counter() - t0}
