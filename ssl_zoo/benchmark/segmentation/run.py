"""``tools/benchmark.py --task segmentation``: BYOL's VOC2012 FCN transfer (App. D.4; PROTOCOLS.md s.6).

1. Data: ``--dataset voc2012_aug`` (VOC2012 + SBD under the dataset root, official list
   sizes enforced) or ``--dataset DIR`` (any folder in VOC's layout, SBD optional).
   train_aug is assembled and saved to ``OUTPUT_DIR/train_aug.txt``.
2. Base lr: with ``BASE_LR`` 0 (the paper), every value of ``LRS`` is trained on train_aug
   minus a held-out part (2,119 images, or 20% of a smaller set) and scored there; the best
   is retrained on all of train_aug. The test split (VOC2012 val) is never used to choose.
3. Fine-tune backbone + head (SGD, wd 1e-4, batch 16, 30k steps, lr x0.1 at 70% / 90%),
   then report mIoU on val. Every row names its schedule: "paper" or "budget: ...".
"""
from __future__ import annotations

import logging
import os
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F

from ssl_zoo.benchmark.dense.loop import distribute, eval_loader, finetune, train_loader
from ssl_zoo.benchmark.dense.schedule import describe_protocol
from ssl_zoo.benchmark.segmentation.metrics import all_reduce_confusion, confusion_matrix, iou_from_confusion
from ssl_zoo.benchmark.segmentation.model import FCN, build_fcn
from ssl_zoo.benchmark.segmentation.transforms import SegEvalTransform, SegTrainTransform
from ssl_zoo.data.catalog import resolve_root
from ssl_zoo.data.readers.voc_segmentation import (SegmentationDataset, SegSample, assemble_train_aug,
                                                   check_official_sizes, find_sbd, find_voc2012,
                                                   num_segmentation_classes, save_sample_list, voc_split_samples)
from ssl_zoo.model_zoo.weights import load_backbone_weights
from ssl_zoo.modeling.backbones.build import build_backbone_from_cfg
from ssl_zoo.utils import comm
from ssl_zoo.utils.env import amp_dtype_from_cfg
from ssl_zoo.utils.env import device_from_cfg

logger = logging.getLogger(__name__)

__all__ = ["run_segmentation", "locate_voc", "PAPER_SCHEDULE"]

OFFICIAL_NAME = "voc2012_aug"
PAPER_SCHEDULE = {"ITERS": 30000, "BATCH_SIZE": 16, "CROP_SIZE": 513, "WEIGHT_DECAY": 1e-4, "LR_STEPS": (0.7, 0.9),
                  "SCALE_RANGE": (0.5, 2.0), "HEAD_CHANNELS": 256, "HEAD_DILATION": 6, "IMAGE_SCALE": 1.0,
                  "SWEEP_ITERS": 30000,
                  "LRS": (0.001, 0.00316, 0.01, 0.0316, 0.1)}


def locate_voc(dataset: str, root: str = "") -> Tuple[str, str, bool]:
    """``(VOC2012 dir, SBD dir or "", official)`` for ``--dataset voc2012_aug`` or a VOC-layout folder."""
    if not dataset:
        raise ValueError(f"--task segmentation needs --dataset: '{OFFICIAL_NAME}' (VOCdevkit/VOC2012 + "
                         f"benchmark_RELEASE under the dataset root) or a folder in VOC's layout")
    if dataset == OFFICIAL_NAME:
        base = resolve_root(root)
        voc, sbd = find_voc2012(base), find_sbd(base)
        if sbd is None:
            raise FileNotFoundError(f"{OFFICIAL_NAME}: SBD (benchmark_RELEASE/dataset with cls/, img/, train.txt, "
                                    f"val.txt) not found under {base}; train_aug needs it")
        return voc, sbd, True
    if not os.path.isdir(dataset):
        raise FileNotFoundError(f"--dataset '{dataset}': neither '{OFFICIAL_NAME}' nor an existing folder")
    return find_voc2012(dataset), find_sbd(dataset) or "", False


def _holdout(samples: Sequence[SegSample], size: int, seed: int) -> Tuple[List[SegSample], List[SegSample]]:
    n = len(samples)
    k = size if 0 < size <= n // 2 else max(1, round(0.2 * n))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    held = set(perm[:k])
    return [s for i, s in enumerate(samples) if i not in held], [s for i, s in enumerate(samples) if i in held]


def _build(cfg, weights: str, seed: int, num_classes: int) -> Tuple[FCN, str]:
    c = cfg.BENCHMARK.SEGMENTATION
    torch.manual_seed(seed)  # the same head initialisation for every lr of the sweep
    backbone = build_backbone_from_cfg(cfg)
    description = load_backbone_weights(backbone, weights)
    return build_fcn(backbone, num_classes, c.HEAD_CHANNELS, c.HEAD_DILATION), description


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset: SegmentationDataset, num_classes: int, ignore_index: int,
             batch_size: int, num_workers: int, device: torch.device, amp_dtype=None) -> Dict[str, object]:
    """mIoU of ``model`` on ``dataset`` (confusion matrix summed over every process)."""
    model.eval()
    cm = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    for x, y in eval_loader(dataset, batch_size, num_workers):
        x, y = x.to(device), y.to(device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(x)
        cm += confusion_matrix(logits.float().argmax(1), y, num_classes, ignore_index)
    return iou_from_confusion(all_reduce_confusion(cm).cpu())


def _train_eval(cfg, weights: str, train: Sequence[SegSample], test: Sequence[SegSample], lr: float,
                num_classes: int, iters: int, desc: str) -> Tuple[Dict[str, object], Dict[str, float], FCN, str]:
    c, b = cfg.BENCHMARK.SEGMENTATION, cfg.BENCHMARK
    device, amp = device_from_cfg(cfg), amp_dtype_from_cfg(cfg, device_from_cfg(cfg))
    model, description = _build(cfg, weights, b.SEED, num_classes)
    ddp = distribute(model, device)
    train_set = SegmentationDataset(train, SegTrainTransform(c.CROP_SIZE, cfg.INPUT.MEAN, cfg.INPUT.STD,
                                                              tuple(c.SCALE_RANGE), c.IGNORE_LABEL, c.IMAGE_SCALE))
    test_set = SegmentationDataset(test, SegEvalTransform(c.CROP_SIZE, cfg.INPUT.MEAN, cfg.INPUT.STD, c.IGNORE_LABEL,
                                                          c.IMAGE_SCALE))

    def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # per-pixel softmax cross-entropy
        return F.cross_entropy(logits, target, ignore_index=c.IGNORE_LABEL)

    stats = finetune(ddp, train_loader(train_set, c.BATCH_SIZE, b.SEED, cfg.DATALOADER.NUM_WORKERS), loss_fn,
                     iters=iters, base_lr=lr, weight_decay=c.WEIGHT_DECAY, momentum=c.MOMENTUM,
                     lr_steps=tuple(c.LR_STEPS), device=device, amp_dtype=amp, desc=desc)
    per_process = max(1, c.BATCH_SIZE // comm.get_world_size())
    metrics = evaluate(model, test_set, num_classes, c.IGNORE_LABEL, per_process, cfg.DATALOADER.NUM_WORKERS,
                       device, amp)
    return metrics, stats, model, description


def _protocol(c) -> str:
    """"paper" or "budget: ..." (the keys that differ from App. D.4, a given lr replacing the sweep)."""
    actual = {k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in c.items() if k in PAPER_SCHEDULE}
    actual["SWEEP_ITERS"] = c.SWEEP_ITERS or c.ITERS
    paper = dict(PAPER_SCHEDULE)
    if c.BASE_LR > 0:  # no sweep: the lr was given
        actual["LRS"] = (c.BASE_LR,)
        del actual["SWEEP_ITERS"], paper["SWEEP_ITERS"]
    return describe_protocol(actual, paper)


def run_segmentation(cfg, args) -> List[Dict]:
    """Fine-tune an FCN from ``args.weights`` on train_aug and report VOC2012 val mIoU (rows for write_results)."""
    c = cfg.BENCHMARK.SEGMENTATION
    voc_dir, sbd_dir, official = locate_voc(args.dataset, cfg.DATASETS.ROOT)
    train, sizes = assemble_train_aug(voc_dir, sbd_dir or None)
    val = voc_split_samples(voc_dir, "val")
    num_classes = c.NUM_CLASSES or num_segmentation_classes(voc_dir)
    if official:
        check_official_sizes(sizes)
    if comm.is_main_process():
        save_sample_list(train, os.path.join(cfg.OUTPUT_DIR, "train_aug.txt"))
    logger.info(f"Segmentation data: {num_classes} classes, train_aug {len(train)} images ({sizes}), val {len(val)}; "
                f"VOC2012 {voc_dir}, "
                f"SBD {sbd_dir or 'none'}; list saved to {os.path.join(cfg.OUTPUT_DIR, 'train_aug.txt')}")
    protocol = _protocol(c)
    rows: List[Dict] = []
    common = {"task": "segmentation", "protocol": protocol, "iters": c.ITERS, "batch_size": c.BATCH_SIZE}
    lr = c.BASE_LR
    if lr <= 0:
        rest, held = _holdout(train, c.VAL_SIZE, cfg.BENCHMARK.VAL_SEED)
        scores = {}
        sweep_iters = c.SWEEP_ITERS or c.ITERS
        for candidate in c.LRS:
            m, stats, _, _ = _train_eval(cfg, args.weights, rest, held, candidate, num_classes, sweep_iters,
                                        f"[lr sweep {candidate:g}]")
            scores[candidate] = m["miou"]
            rows.append({**common, "mode": "lr sweep", "split": f"train_aug held-out ({len(held)} of {len(train)})",
                         "lr": candidate, "miou": m["miou"], "pixel_acc": m["pixel_acc"], **stats,
                         "iters": sweep_iters})
            logger.info(f"lr {candidate:g}: held-out mIoU {m['miou']:.2f}")
        lr = max(scores, key=lambda k: (scores[k], -k))  # ties: the smaller lr
    metrics, stats, model, description = _train_eval(cfg, args.weights, train, val, lr, num_classes, c.ITERS,
                                                         f"[final lr {lr:g}]")
    rows.append({**common, "mode": "final", "split": f"val ({len(val)})", "lr": lr, "miou": metrics["miou"],
                 "pixel_acc": metrics["pixel_acc"], "iou_per_class": metrics["iou"],
                 "output_stride": model.output_stride, "num_classes": num_classes, "train_images": len(train),
                 "weights": description, **stats})
    return rows
