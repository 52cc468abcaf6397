"""Linear evaluation (``--task linear``, PROTOCOLS.md s.3): the faithful protocol (the frozen
encoder on freshly augmented images every epoch) and the fast one (cached features of K
augmented copies), both training every grid lr at once as parallel heads (``linear_heads.py``).
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch

from ssl_zoo.benchmark.eval_setup import EvalSetup, encode, extract, feature_dim
from ssl_zoo.benchmark.linear_heads import LinearHeads, head_accuracy, select_best, train_heads
from ssl_zoo.data.samplers import mix_seed
from ssl_zoo.utils import comm
from ssl_zoo.utils.file_io import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["LinearConfig", "linear_config", "run_linear", "run_linear_faithful", "run_linear_fast",
           "cached_train_features"]


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
    dim = feature_dim(setup)
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


def linear_config(cfg) -> LinearConfig:
    c = cfg.BENCHMARK.LINEAR
    return LinearConfig(lrs=tuple(c.LRS), epochs=c.EPOCHS, batch_size=c.BATCH_SIZE, momentum=c.MOMENTUM,
                        nesterov=c.NESTEROV, weight_decay=c.WEIGHT_DECAY, fast_aug_copies=c.FAST_AUG_COPIES)
