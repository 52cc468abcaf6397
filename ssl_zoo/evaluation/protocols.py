"""The evaluation protocols of ``tools/benchmark.py``: kNN, linear (faithful / fast), semi-supervised.

Each ``run_*`` takes an :class:`EvalSetup` (backbone with its weights loaded, the labelled
train / test splits, the held-out validation split) and returns result rows (dicts) that
``tools/benchmark.py`` prints, writes to ``results.json`` and appends to the results CSV.

Hyper-parameters are always chosen on the validation split held out from train and the
chosen configuration is reported on test (PROTOCOLS.md s.3-4); test accuracies of the
other configurations are never computed.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ssl_zoo.evaluation.data import LabelledSplit
from ssl_zoo.evaluation.knn import knn_accuracy
from ssl_zoo.evaluation.linear import LinearHeads, cosine_factor, head_accuracy, select_best, train_heads
from ssl_zoo.evaluation.metrics import topk_correct
from ssl_zoo.utils import comm
from ssl_zoo.utils.file_io import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["EvalSetup", "encode", "extract", "run_knn", "run_linear", "run_semi"]


@dataclass
class EvalSetup:
    """Everything a protocol needs.

    Attributes:
        backbone: the evaluated network with its weights (never modified by a protocol).
        train, test: labelled splits.
        rest_idx, val_idx: indices into ``train``: the held-out validation split and the rest.
        device, amp_dtype, channels_last: how forward passes run.
        batch_size: of feature extraction.
        seed: of epoch orders, augmentations and head initialisation.
        cache_dir: fast-mode feature cache ("" = no cache on disk).
        cache_key: identifies (weights, backbone, data, transforms) in cache file names.
        weights_description, dataset_names: for reports.
    """

    backbone: nn.Module
    train: LabelledSplit
    test: LabelledSplit
    rest_idx: torch.Tensor
    val_idx: torch.Tensor
    device: torch.device
    amp_dtype: Optional[torch.dtype] = None
    channels_last: bool = False
    batch_size: int = 256
    seed: int = 0
    cache_dir: str = ""
    cache_key: str = ""
    weights_description: str = ""
    dataset_names: Tuple[str, str] = ("", "")

    def is_val(self) -> torch.Tensor:
        """bool ``[len(train)]``: True for the held-out validation images."""
        mask = torch.zeros(len(self.train), dtype=torch.bool)
        mask[self.val_idx] = True
        return mask

    @property
    def num_classes(self) -> int:
        return max(self.train.num_classes, self.test.num_classes)

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)


# ---------------------------------------------------------------------------- features
def encode(setup: EvalSetup, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``[b, 3, S, S] -> [b, D]`` float32 features of ``model`` (no gradient)."""
    if setup.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), setup.autocast():
        return model(x).float().flatten(1)


def _gather_in_order(local: torch.Tensor, total: int) -> torch.Tensor:
    """Undo the strided ``r::world`` sharding of evaluation batches."""
    world = comm.get_world_size()
    if world == 1:
        return local
    parts = comm.all_gather(local.cpu())
    out = torch.empty((total,) + tuple(local.shape[1:]), dtype=local.dtype)
    for r, p in enumerate(parts):
        out[r::world] = p
    return out.to(local.device)


def extract(setup: EvalSetup, model: nn.Module, split: LabelledSplit,
            indices: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Centre-crop features ``[N, D]`` and labels ``[N]`` of ``indices`` (in that order), eval mode."""
    indices = torch.arange(len(split)) if indices is None else indices
    was_training = model.training
    model.eval()
    feats, labels = [], []
    try:
        for x, y, _ in split.eval_batches(indices, setup.batch_size):
            feats.append(encode(setup, model, x))
            labels.append(y)
    finally:
        model.train(was_training)
    if not feats:
        raise ValueError(f"nothing to evaluate on rank {comm.get_rank()}: {len(indices)} images for "
                         f"{comm.get_world_size()} processes")
    f, y = torch.cat(feats), torch.cat(labels)
    return _gather_in_order(f, len(indices)), _gather_in_order(y, len(indices))


# ---------------------------------------------------------------------------- kNN
def run_knn(setup: EvalSetup, ks: Sequence[int] = (200, 20), temperature: float = 0.1) -> List[Dict]:
    """Weighted cosine kNN (k = 200 and 20, T = 0.1): the whole train split is the memory bank."""
    t0 = time.perf_counter()
    train_f, train_y = extract(setup, setup.backbone, setup.train)
    test_f, test_y = extract(setup, setup.backbone, setup.test)
    train_f, test_f = F.normalize(train_f, dim=1), F.normalize(test_f, dim=1)
    rows = []
    for k in ks:
        acc = knn_accuracy(train_f, train_y, test_f, test_y, k=int(k), temperature=temperature,
                           num_classes=setup.num_classes)
        rows.append({"task": "knn", "mode": f"k={k}", "top1": acc["top1"], "top5": acc["top5"],
                     "seconds": time.perf_counter() - t0})
    return rows


# ---------------------------------------------------------------------------- linear
@dataclass
class LinearConfig:
    """PROTOCOLS.md s.3 hyper-parameters (``cfg.BENCHMARK.LINEAR``)."""

    lrs: Sequence[float] = (0.4, 0.3, 0.2, 0.1, 0.05)
    epochs: int = 80
    batch_size: int = 1024
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.0
    fast_aug_copies: int = 4


def _selection_weights(is_val: torch.Tensor, idx: torch.Tensor, n_lrs: int, device: torch.device) -> torch.Tensor:
    """``[2L, b]``: heads 0..L-1 (selection) skip validation images, heads L..2L-1 (final) train on all."""
    train_only = (~is_val[idx]).float().to(device)
    return torch.cat([train_only.expand(n_lrs, -1), torch.ones(n_lrs, len(idx), device=device)])


def _linear_result(setup: EvalSetup, heads: LinearHeads, lrs: Sequence[float], val: Tuple, test: Tuple,
                   mode: str, seconds: float, **extra) -> Dict:
    """Choose the lr on validation (selection heads), report the final head of that lr on test."""
    n = len(lrs)
    val_acc = head_accuracy(heads, *val)["top1"][:n]
    best, lr = select_best(val_acc.tolist(), list(lrs))
    final = LinearHeads(heads.weight.shape[2], heads.weight.shape[1], 1).to(heads.weight.device)
    with torch.no_grad():
        final.weight.copy_(heads.weight[n + best:n + best + 1])
        final.bias.copy_(heads.bias[n + best:n + best + 1])
    acc = head_accuracy(final, *test)
    return {"task": "linear", "mode": mode, "top1": float(acc["top1"][0]), "top5": float(acc["top5"][0]),
            "best_lr": lr, "val_top1_per_lr": {str(k): round(float(v), 2) for k, v in zip(lrs, val_acc)},
            "seconds": seconds, **extra}


def run_linear_faithful(setup: EvalSetup, c: LinearConfig) -> Dict:
    """The paper's protocol: every epoch the frozen encoder (BN in eval mode) sees freshly
    augmented images (random resized crop + flip).

    One pass trains 2 x len(lrs) heads: the selection heads on train minus validation,
    the final heads on all of train (exactly what a separate run per lr would do, with the
    same batches, at the cost of one encoder pass). Selection heads see ~90% of each batch.
    """
    t0 = time.perf_counter()
    lrs, n = list(c.lrs), len(c.lrs)
    backbone = setup.backbone.eval()
    is_val = setup.is_val()
    dim = _feature_dim(setup)
    heads = LinearHeads(dim, setup.num_classes, 2 * n, seed=setup.seed).to(setup.device)
    steps = math.ceil(len(setup.train) / c.batch_size)

    def epoch_batches(epoch: int):
        for x, y, idx in setup.train.train_batches(None, c.batch_size, epoch):
            yield encode(setup, backbone, x), y, _selection_weights(is_val, idx, n, setup.device)

    train_heads(heads, lrs + lrs, epoch_batches, c.epochs, steps, momentum=c.momentum, nesterov=c.nesterov,
                weight_decay=c.weight_decay, log=lambda s: logger.info(f"linear (faithful) {s}"))
    val = extract(setup, backbone, setup.train, setup.val_idx)
    test = extract(setup, backbone, setup.test)
    return _linear_result(setup, heads, lrs, val, test, "faithful", time.perf_counter() - t0, epochs=c.epochs)


def _feature_dim(setup: EvalSetup) -> int:
    """D of the backbone's features (one dummy image, eval mode)."""
    x = torch.zeros(1, 3, setup.train.image_size, setup.train.image_size, device=setup.device)
    return encode(setup, setup.backbone.eval(), x).shape[1]


def cached_train_features(setup: EvalSetup, copies: int, batch_size: int = 1024) -> torch.Tensor:
    """``[K, N, D]`` features of K augmented copies of every train image (K = 0: one centre crop).

    Stored as float16 in ``setup.cache_dir`` (atomically; reused when the key matches), so a
    second evaluation of the same weights skips the encoder entirely.
    """
    path = ""
    if setup.cache_dir and setup.cache_key:
        path = os.path.join(setup.cache_dir, f"linear-{setup.cache_key}-k{copies}-s{setup.seed}.pt")
        if os.path.isfile(path):
            logger.info(f"Feature cache hit: {path}")
            return torch.load(path, map_location=setup.device, weights_only=True).float()
    backbone = setup.backbone.eval()
    n = len(setup.train)
    if copies == 0:
        feats = extract(setup, backbone, setup.train)[0][None]
    else:
        out = None
        for k in range(copies):  # copy k = the augmentations of "epoch" k of the training order
            f_local, i_local = [], []
            for x, _, idx in setup.train.train_batches(None, batch_size, epoch=10_000 + k):
                f_local.append(encode(setup, backbone, x).cpu())
                i_local.append(idx)
            f, i = torch.cat(f_local), torch.cat(i_local)
            if comm.get_world_size() > 1:
                f, i = torch.cat(comm.all_gather(f)), torch.cat(comm.all_gather(i))
            if out is None:
                out = torch.empty(copies, n, f.shape[1])
            out[k, i] = f
        feats = out.to(setup.device)
    if path and comm.is_main_process():
        os.makedirs(setup.cache_dir, exist_ok=True)
        half = feats.half().cpu()
        atomic_write(path, lambda fh: torch.save(half, fh))
        logger.info(f"Cached {tuple(feats.shape)} train features at {path}")
    return feats.half().float()  # the same precision whether the cache was hit or not


def run_linear_fast(setup: EvalSetup, c: LinearConfig) -> Dict:
    """Heads trained on cached frozen features: the encoder runs K + 1 times over the data
    instead of ``epochs`` times. Each epoch draws one of the K augmented copies per image."""
    t0 = time.perf_counter()
    lrs, n = list(c.lrs), len(c.lrs)
    feats = cached_train_features(setup, c.fast_aug_copies, c.batch_size)  # [K, N, D]
    labels = setup.train.targets.to(setup.device)
    val = extract(setup, setup.backbone, setup.train, setup.val_idx)
    test = extract(setup, setup.backbone, setup.test)
    is_val = setup.is_val()
    heads = LinearHeads(feats.shape[2], setup.num_classes, 2 * n, seed=setup.seed).to(setup.device)
    steps = math.ceil(feats.shape[1] / c.batch_size)

    def epoch_batches(epoch: int):
        from ssl_zoo.data.samplers import mix_seed

        g = torch.Generator().manual_seed(mix_seed(setup.seed, epoch))
        order = torch.randperm(feats.shape[1], generator=g)
        copy_of = torch.randint(feats.shape[0], (feats.shape[1],), generator=g)
        for s in range(0, len(order), c.batch_size):
            idx = order[s:s + c.batch_size]
            k = copy_of[idx]
            yield (feats[k.to(feats.device), idx.to(feats.device)], labels[idx.to(labels.device)],
                   _selection_weights(is_val, idx, n, setup.device))

    # Every process holds the whole cache: each trains the (cheap) heads alone, identically.
    train_heads(heads, lrs + lrs, epoch_batches, c.epochs, steps, momentum=c.momentum, nesterov=c.nesterov,
                weight_decay=c.weight_decay, sync=False, log=lambda s: logger.info(f"linear (fast) {s}"))
    return _linear_result(setup, heads, lrs, val, test, "fast", time.perf_counter() - t0, epochs=c.epochs,
                          aug_copies=c.fast_aug_copies)


def run_linear(setup: EvalSetup, c: LinearConfig, mode: str = "faithful") -> List[Dict]:
    """``mode`` "faithful", "fast" or "both" (then the fast row carries the speedup and the
    difference to the faithful accuracy)."""
    if mode not in ("faithful", "fast", "both"):
        raise ValueError(f"BENCHMARK.LINEAR.MODE must be faithful, fast or both, got '{mode}'")
    rows = []
    if mode in ("faithful", "both"):
        rows.append(run_linear_faithful(setup, c))
    if mode in ("fast", "both"):
        rows.append(run_linear_fast(setup, c))
    if mode == "both":
        rows[1]["speedup_vs_faithful"] = rows[0]["seconds"] / max(rows[1]["seconds"], 1e-9)
        rows[1]["top1_minus_faithful"] = rows[1]["top1"] - rows[0]["top1"]
    return rows


# ---------------------------------------------------------------------------- semi-supervised
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
    model = _Classifier(copy.deepcopy(setup.backbone), _feature_dim(setup), setup.num_classes, setup.seed)
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
    model = _Classifier(copy.deepcopy(setup.backbone), _feature_dim(setup), setup.num_classes, setup.seed).to(setup.device)
    model.load_state_dict(best_state)
    acc = _accuracy(setup, model, setup.test, None)
    return {"task": "semi", "mode": fraction_label, "top1": acc["top1"], "top5": acc["top5"], "best_lr": best_cfg[0],
            "best_epochs": best_cfg[1], "labelled_images": int(len(subset_idx)), "val_top1_grid": grid,
            "seconds": time.perf_counter() - t0}
