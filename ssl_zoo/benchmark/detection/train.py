"""Training, precise BN and testing of the C4 detector: MoCo's VOC schedule (PROTOCOLS.md s.6).

``run_detection(cfg, args)`` is the ``tools/benchmark.py --task detection`` entry point:
backbone + ``--weights`` -> Faster R-CNN C4 -> SGD with warm-up and steps -> precise BN ->
VOC evaluation on VOC2007 test -> result rows.
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ssl_zoo.benchmark.detection.data import (build_test_loader, build_train_loader, build_voc_splits,
                                             voc_roots)
from ssl_zoo.benchmark.detection.model import build_c4_faster_rcnn
from ssl_zoo.benchmark.detection.voc_eval import VOCDetectionEvaluator
from ssl_zoo.checkpoint.checkpointer import Checkpointer
from ssl_zoo.utils.env import amp_dtype_from_cfg
from ssl_zoo.model_zoo.weights import load_backbone_weights
from ssl_zoo.modeling.backbones.build import build_backbone_from_cfg
from ssl_zoo.modeling.batchnorm import convert_sync_batchnorm
from ssl_zoo.utils import comm
from ssl_zoo.utils.env import device_from_cfg

logger = logging.getLogger(__name__)

__all__ = ["Schedule", "schedule_from_cfg", "lr_at", "build_optimizer", "precise_bn", "evaluate", "detector_from_cfg",
           "run_detection"]


@dataclass(frozen=True)
class Schedule:
    """Multi-step lr with linear warm-up (detectron2 WarmupMultiStepLR)."""

    base_lr: float
    max_iter: int
    steps: Tuple[int, ...]
    warmup_iters: int
    warmup_factor: float
    budget: str = ""  # "" = the protocol; else a description of the shortened schedule


def schedule_from_cfg(cfg) -> Schedule:
    """The protocol's schedule, or BUDGET_ITERS with the steps at the same fractions (75% / 92%).

    The warm-up keeps its length (it protects the first steps of the fresh heads whatever the
    schedule's length), capped at 10% of the budget."""
    d = cfg.BENCHMARK.DETECTION
    if any(s >= d.MAX_ITER for s in d.STEPS):
        raise ValueError(f"BENCHMARK.DETECTION.STEPS {tuple(d.STEPS)} must be < MAX_ITER {d.MAX_ITER}")
    if d.BUDGET_ITERS <= 0:
        return Schedule(d.BASE_LR, d.MAX_ITER, tuple(d.STEPS), d.WARMUP_ITERS, d.WARMUP_FACTOR)
    f = d.BUDGET_ITERS / d.MAX_ITER
    return Schedule(d.BASE_LR, d.BUDGET_ITERS, tuple(int(round(s * f)) for s in d.STEPS),
                    min(d.WARMUP_ITERS, d.BUDGET_ITERS // 10), d.WARMUP_FACTOR,
                    budget=f"budget: {d.BUDGET_ITERS} of {d.MAX_ITER} iterations (steps scaled)")


def lr_at(s: Schedule, it: int) -> float:
    """Learning rate of iteration ``it`` (0-based)."""
    lr = s.base_lr * 0.1 ** sum(it >= step for step in s.steps)
    if it < s.warmup_iters:
        alpha = it / s.warmup_iters
        lr *= s.warmup_factor * (1 - alpha) + alpha
    return lr


def build_optimizer(model: nn.Module, lr: float, momentum: float, weight_decay: float,
                    weight_decay_norm: float) -> torch.optim.SGD:
    """SGD; BN parameters get ``weight_decay_norm`` (detectron2's WEIGHT_DECAY_NORM, 0)."""
    norm_params, other = [], []
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if p.requires_grad:
                (norm_params if isinstance(module, _BatchNorm) else other).append(p)
    groups = [{"params": other, "weight_decay": weight_decay},
              {"params": norm_params, "weight_decay": weight_decay_norm}]
    return torch.optim.SGD(groups, lr=lr, momentum=momentum)


@torch.no_grad()
def precise_bn(model: nn.Module, batches: Iterable, num_iters: int, device: torch.device,
               amp_dtype: Optional[torch.dtype] = None) -> int:
    """Recompute every BN's running statistics as the equal-weight average over ``num_iters``
    training batches (detectron2's PreciseBN / fvcore ``update_bn_stats``), in training mode.

    torchvision's detection models need targets in training mode, so batches are
    ``(images, targets)``; the losses are computed and discarded. Returns the batches used.
    """
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not bns or num_iters <= 0:
        return 0
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average = equal weight per batch
    was_training = model.training
    model.train()
    n = 0
    try:
        for images, targets in batches:
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                model([i.to(device) for i in images], [_to(t, device) for t in targets])
            n += 1
            if n >= num_iters:
                break
    finally:
        for bn, m in zip(bns, momenta):
            bn.momentum = m
        model.train(was_training)
    return n


def _to(target: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in target.items()}


@torch.no_grad()
def evaluate(model: nn.Module, loader, class_names, device: torch.device, amp_dtype=None,
             use_07_metric: bool = True) -> Dict[str, object]:
    """Predict this process's shard, gather everything on the main process, VOC metrics there
    (other processes return ``{}``)."""
    model.eval()
    local = []
    for images, targets in loader:
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            outputs = model([i.to(device) for i in images])
        for out, t in zip(outputs, targets):
            local.append((t["image_id"], {k: v.float().cpu() for k, v in out.items()},
                          {k: t[k] for k in ("boxes", "labels", "difficult")}))
    gathered = comm.all_gather(local)
    if not comm.is_main_process():
        return {}
    evaluator = VOCDetectionEvaluator(class_names, use_07_metric)
    for part in gathered:
        for image_id, pred, target in part:
            evaluator.add(image_id, pred, target)
    return evaluator.evaluate()


def detector_from_cfg(cfg, resnet: nn.Module, num_classes: int) -> nn.Module:
    """:func:`build_c4_faster_rcnn` with ``BENCHMARK.DETECTION.*`` and the backbone's INPUT.MEAN / STD."""
    d = cfg.BENCHMARK.DETECTION
    return build_c4_faster_rcnn(
        resnet, num_classes, train_sizes=tuple(d.MIN_SIZE_TRAIN), test_size=d.MIN_SIZE_TEST, max_size=d.MAX_SIZE,
        image_mean=tuple(cfg.INPUT.MEAN), image_std=tuple(cfg.INPUT.STD), anchor_sizes=tuple(d.ANCHOR_SIZES),
        aspect_ratios=tuple(d.ASPECT_RATIOS), pooler_resolution=d.POOLER_RESOLUTION,
        rpn_pre_nms_top_n=(d.RPN_PRE_NMS_TOPK_TRAIN, d.RPN_PRE_NMS_TOPK_TEST),
        rpn_post_nms_top_n=(d.RPN_POST_NMS_TOPK_TRAIN, d.RPN_POST_NMS_TOPK_TEST),
        rpn_batch_size_per_image=d.RPN_BATCH_SIZE_PER_IMAGE, box_batch_size_per_image=d.ROI_BATCH_SIZE_PER_IMAGE)


def run_detection(cfg, args) -> List[Dict]:
    """Train and test the detector for ``args.weights`` on ``args.dataset`` (voc07 / voc0712).

    Resumes from ``OUTPUT_DIR/last_checkpoint`` with ``args.resume``. Returns one result row.
    """
    d = cfg.BENCHMARK.DETECTION
    device = device_from_cfg(cfg)
    amp_dtype = amp_dtype_from_cfg(cfg, device)
    rank, world = comm.get_rank(), comm.get_world_size()
    if d.IMS_PER_BATCH % world:
        raise ValueError(f"BENCHMARK.DETECTION.IMS_PER_BATCH {d.IMS_PER_BATCH} is not divisible by {world} processes")
    dataset = getattr(args, "dataset", "") or "voc07"
    roots = voc_roots(cfg.DATASETS.ROOT, d.VOC2007_ROOT, d.VOC2012_ROOT)
    train_set, test_set, classes = build_voc_splits(dataset, roots)
    schedule = schedule_from_cfg(cfg)
    if schedule.budget:
        logger.warning(f"Detection schedule shortened ({schedule.budget}); results are not the protocol's")

    resnet = build_backbone_from_cfg(cfg)
    weights_desc = load_backbone_weights(resnet, args.weights)
    model = detector_from_cfg(cfg, resnet, len(classes)).to(device)
    if world > 1:  # BN synchronised across processes (MoCo: "naive" SyncBN)
        model = convert_sync_batchnorm(model)
    optimizer = build_optimizer(model, schedule.base_lr, d.MOMENTUM, d.WEIGHT_DECAY, d.WEIGHT_DECAY_NORM)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)  # fp16 needs loss scaling
    checkpointer = Checkpointer(cfg.OUTPUT_DIR, model, optimizer, scaler=scaler)
    start = checkpointer.resume_or_load("", resume=bool(getattr(args, "resume", False))).get("iteration", -1) + 1
    ddp = model if world == 1 else nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
    logger.info(f"Detection: {dataset} ({len(train_set)} train / {len(test_set)} test images, {len(classes)} classes), "
                f"res4 stride {model.backbone.stride}, {model.backbone.out_channels} channels; iterations "
                f"{start}..{schedule.max_iter}, steps {schedule.steps}, batch {d.IMS_PER_BATCH}")

    loader = build_train_loader(train_set, d.IMS_PER_BATCH, cfg.BENCHMARK.SEED, rank, world, start,
                                cfg.DATALOADER.NUM_WORKERS)
    it_loader = iter(loader)
    model.train()
    t0, timed = time.perf_counter(), 0
    losses: Dict[str, float] = {}
    for it in range(start, schedule.max_iter):
        images, targets = next(it_loader)
        for g in optimizer.param_groups:
            g["lr"] = lr_at(schedule, it)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            loss_dict = ddp([i.to(device) for i in images], [_to(t, device) for t in targets])
        loss = sum(loss_dict.values())
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"detection loss is {loss.item()} at iteration {it}: {loss_dict}")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        timed += 1
        losses = {k: v.item() for k, v in comm.reduce_dict({k: v.detach() for k, v in loss_dict.items()}).items()}
        if (it + 1) % d.LOG_PERIOD == 0 or it + 1 == schedule.max_iter:
            rate = timed / (time.perf_counter() - t0)
            logger.info(f"iter {it + 1}/{schedule.max_iter} lr {lr_at(schedule, it):.5f} loss {sum(losses.values()):.3f} "
                        + " ".join(f"{k} {v:.3f}" for k, v in losses.items()) + f" ({rate:.2f} it/s)")
        if d.CHECKPOINT_PERIOD > 0 and (it + 1) % d.CHECKPOINT_PERIOD == 0 and it + 1 < schedule.max_iter:
            checkpointer.save(f"model_{it + 1:07d}", iteration=it)
    train_seconds = time.perf_counter() - t0
    its_per_s = timed / train_seconds if timed else float("nan")
    # precise BN from fresh statistics, so a run resumed after it recomputes the same values
    n_bn = precise_bn(model, ((i, t) for i, t in it_loader), d.PRECISE_BN_ITERS, device, amp_dtype)
    if timed:
        checkpointer.save("model_final", iteration=schedule.max_iter - 1)
    test_loader = build_test_loader(test_set, d.TEST_IMS_PER_BATCH, rank, world, cfg.DATALOADER.NUM_WORKERS)
    t1 = time.perf_counter()
    metrics = evaluate(model, test_loader, classes, device, amp_dtype)
    test_seconds = time.perf_counter() - t1
    if not comm.is_main_process():
        return []
    row = {"task": "detection", "mode": "budget" if schedule.budget else "protocol", "dataset": dataset,
           "AP50": metrics["AP50"], "AP": metrics["AP"], "AP75": metrics["AP75"], "iterations": schedule.max_iter,
           "schedule": schedule.budget or "protocol (MoCo VOC 24k)", "precise_bn_iters": n_bn,
           "train_its_per_s": its_per_s, "train_seconds": train_seconds, "test_seconds": test_seconds,
           "per_class_AP50": metrics["per_class_AP50"], "classes_without_gt": metrics["classes_without_gt"],
           "weights": weights_desc, "seconds": train_seconds + test_seconds}
    return [row]
