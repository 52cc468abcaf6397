"""Semi-supervised fine-tuning (``--task semi``, PROTOCOLS.md s.4): the whole network plus a new
linear layer fine-tuned on 1% / 10% of the labels, the (lr, epochs) grid chosen on validation."""
from __future__ import annotations

import copy
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ssl_zoo.benchmark.eval_setup import EvalSetup, extract, feature_dim
from ssl_zoo.benchmark.splits import LabelledSplit
from ssl_zoo.data.subset import holdout_split, subset_indices
from ssl_zoo.evaluation.metrics import topk_correct
from ssl_zoo.model_zoo.download import download
from ssl_zoo.solver.schedules import cosine_factor
from ssl_zoo.utils import comm

logger = logging.getLogger(__name__)

__all__ = ["SemiConfig", "semi_config", "semi_subset", "finetune", "run_semi", "SIMCLR_SUBSET_URL"]

# SimCLR's fixed ImageNet subsets (Chen et al. 2020, used by BYOL App. C.1): one file name per line.
SIMCLR_SUBSET_URL = "https://raw.githubusercontent.com/google-research/simclr/master/imagenet_subsets/{}percent.txt"


@dataclass
class SemiConfig:
    """PROTOCOLS.md s.4 hyper-parameters (``cfg.BENCHMARK.SEMI``)."""

    lrs: Sequence[float] = (0.01, 0.02, 0.05, 0.1, 0.005)
    epochs: Sequence[int] = (30, 50)
    batch_size: int = 1024
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.0


class _Classifier(nn.Module):
    """Backbone + linear layer, fine-tuned together: ``[B,3,S,S] -> [B, C]``."""

    def __init__(self, backbone: nn.Module, dim: int, num_classes: int, seed: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(dim, num_classes)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(num_classes, dim, generator=g) * 0.01)
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x).flatten(1).float())


def finetune(setup: EvalSetup, subset_idx: torch.Tensor, lr: float, epochs: int, c: SemiConfig) -> nn.Module:
    """Fine-tune a copy of the backbone + a new linear layer on ``subset_idx`` (BN in train mode).

    SGD with Nesterov momentum, no weight decay, cosine decay of ``lr`` per step; batch
    ``min(batch_size, |subset|)`` so a small subset still gets full-size steps.
    """
    model = _Classifier(copy.deepcopy(setup.backbone), feature_dim(setup), setup.num_classes, setup.seed)
    model.to(setup.device).train()
    for p in model.parameters():  # the evaluated backbone is frozen; its copy is fine-tuned whole
        p.requires_grad_(True)
    if setup.channels_last:
        model = model.to(memory_format=torch.channels_last)
    trained = model
    if comm.get_world_size() > 1:
        trained = nn.parallel.DistributedDataParallel(model, device_ids=[setup.device.index] if setup.device.type == "cuda" else None)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=c.momentum, nesterov=c.nesterov,
                          weight_decay=c.weight_decay)
    batch = min(c.batch_size, len(subset_idx))
    steps = math.ceil(len(subset_idx) / batch)
    total, step = epochs * steps, 0
    for epoch in range(epochs):
        for x, y, _ in setup.train.train_batches(subset_idx, batch, epoch):
            for group in opt.param_groups:
                group["lr"] = lr * cosine_factor(step, total)
            if setup.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with setup.autocast():
                loss = F.cross_entropy(trained(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    return model.eval()


def _accuracy(setup: EvalSetup, model: nn.Module, split: LabelledSplit, indices: Optional[torch.Tensor]) -> Dict[str, float]:
    logits, labels = extract(setup, model, split, indices)
    top1, top5 = topk_correct(logits, labels)
    n = max(labels.numel(), 1)
    return {"top1": 100.0 * top1.item() / n, "top5": 100.0 * top5.item() / n}


def run_semi(setup: EvalSetup, subset_idx: torch.Tensor, fraction_label: str, c: SemiConfig) -> Dict:
    """Fine-tune for every (lr, epochs) of the grid on the labelled subset, choose on the
    validation split, report the chosen model on test."""
    t0 = time.perf_counter()
    overlap = set(subset_idx.tolist()) & set(setup.val_idx.tolist())
    if overlap:
        raise ValueError(f"the labelled subset overlaps the validation split ({len(overlap)} images)")
    best_acc, best_cfg, best_state, grid = -1.0, None, None, {}
    for epochs in c.epochs:
        for lr in c.lrs:
            model = finetune(setup, subset_idx, float(lr), int(epochs), c)
            val = _accuracy(setup, model, setup.train, setup.val_idx)["top1"]
            grid[f"lr={lr},ep={epochs}"] = round(val, 2)
            logger.info(f"semi {fraction_label}: lr {lr}, {epochs} epochs -> val top-1 {val:.2f}")
            if val > best_acc:
                best_acc, best_cfg = val, (float(lr), int(epochs))
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model = _Classifier(copy.deepcopy(setup.backbone), feature_dim(setup), setup.num_classes, setup.seed).to(setup.device)
    model.load_state_dict(best_state)
    acc = _accuracy(setup, model, setup.test, None)
    return {"task": "semi", "mode": fraction_label, "top1": acc["top1"], "top5": acc["top5"], "best_lr": best_cfg[0],
            "best_epochs": best_cfg[1], "labelled_images": int(len(subset_idx)), "val_top1_grid": grid,
            "seconds": time.perf_counter() - t0}
def semi_config(cfg) -> SemiConfig:
    c = cfg.BENCHMARK.SEMI
    return SemiConfig(lrs=tuple(c.LRS), epochs=tuple(int(e) for e in c.EPOCHS), batch_size=c.BATCH_SIZE,
                      momentum=c.MOMENTUM, nesterov=c.NESTEROV, weight_decay=c.WEIGHT_DECAY)


def _read_subset_list(path: str, dataset) -> torch.Tensor:
    """Indices of the dataset's files named in ``path`` (by file name), in dataset order."""
    with open(path, encoding="utf-8") as f:
        names = {line.strip() for line in f if line.strip() and not line.startswith("#")}
    samples = getattr(dataset, "samples", None)
    if samples is None:
        raise TypeError(f"{path}: a subset list needs a file-backed dataset (ImageFolder / file list), "
                        f"got {type(dataset).__name__}")
    idx = [i for i, (p, _) in enumerate(samples) if os.path.basename(p) in names]
    if len(idx) < len(names):
        found = {os.path.basename(samples[i][0]) for i in idx}
        missing = sorted(names - found)
        raise ValueError(f"{path}: {len(missing)} of {len(names)} listed images are not in the dataset, "
                         f"e.g. {missing[:3]}")
    return torch.tensor(idx, dtype=torch.int64)


def semi_subset(cfg, setup: EvalSetup, percent: int) -> Tuple[torch.Tensor, EvalSetup]:
    """The labelled ``percent``% subset (indices into train) and the setup to select on.

    ImageNet without ``BENCHMARK.SEMI.SUBSET_LIST``: SimCLR's public list, downloaded once
    into the cache. A list (official or given) is used whole (PROTOCOLS.md s.4): when some of
    its images fall in the held-out validation split, the validation split is drawn again, of
    the same size and seed, from the images outside the list (the returned setup carries it),
    so that no image is both trained on and selected on. Elsewhere: ``percent``% of every
    class of the non-validation images, drawn with ``SUBSET_SEED`` (the 1% subset is inside
    the 10%), and ``setup`` unchanged.

    Returns:
        ``(subset_idx [M], setup)``.
    """
    if percent not in (1, 10) and not cfg.BENCHMARK.SEMI.SUBSET_LIST:
        logger.warning(f"semi-supervised with {percent}% of the labels (the protocol uses 1% and 10%)")
    path = cfg.BENCHMARK.SEMI.SUBSET_LIST
    if not path and setup.dataset_names[0].startswith("imagenet_"):
        path = download(SIMCLR_SUBSET_URL.format(percent), filename=f"simclr_imagenet_{percent}percent.txt")
    if path:
        idx = _read_subset_list(path, setup.train.dataset)
        clash = torch.isin(idx, setup.val_idx)
        if clash.any():
            b = cfg.BENCHMARK
            rest, val = holdout_split(setup.train.targets, fraction=b.VAL_FRACTION, size=len(setup.val_idx),
                                      seed=b.VAL_SEED, exclude=idx)
            logger.info(f"{int(clash.sum())} listed images were in the validation split: the {len(val)} validation "
                        "images are drawn again from the images outside the list (the list is used whole)")
            setup = copy.copy(setup)  # shallow: same backbone and splits, new index sets
            setup.rest_idx, setup.val_idx = rest, val
        return idx, setup
    rest = setup.rest_idx
    local = subset_indices(setup.train.targets[rest], fraction=percent / 100.0, seed=cfg.BENCHMARK.SEMI.SUBSET_SEED)
    return rest[local], setup
