"""``tools/benchmark.py --task depth``: BYOL's NYU v2 depth transfer (App. D.6; PROTOCOLS.md s.6).

Data: ``--dataset nyuv2`` (``nyu_depth_v2_labeled.mat`` + ``splits.mat`` under
``<dataset root>/nyu_depth_v2``, official sizes enforced: 1,449 frames, 795 / 654) or
``--dataset DIR`` holding the two files. The model trains on ``trainNdxs`` and is scored on
``testNdxs``. BYOL says it "follow[s] the same protocol as" Laina et al., who trained on
~12k frames sampled from the *raw* NYU v2 training scenes; the labeled file holds only the
795 training frames (deviation, stated in every result row).

Training: the FCRN decoder on the backbone, berHu loss over valid pixels (depth > 0) with
the prediction bilinearly upsampled to the target, SGD, 7,500 steps, batch 256, wd 5e-4, lr
0.16. Every row names its schedule: "paper" or "budget: ...".
"""
from __future__ import annotations

import logging
import os
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F

from ssl_zoo.benchmark.dense.loop import distribute, eval_loader, finetune, train_loader
from ssl_zoo.benchmark.dense.schedule import describe_protocol
from ssl_zoo.benchmark.depth.data import DepthAugment, NYUDepthDataset
from ssl_zoo.benchmark.depth.loss import berhu_loss
from ssl_zoo.benchmark.depth.metrics import DepthMetricSums
from ssl_zoo.benchmark.depth.model import FCRN, build_fcrn
from ssl_zoo.data.catalog import resolve_root
from ssl_zoo.data.readers.nyu_depth import OFFICIAL_SIZES, NYUDepthLabeled, find_nyu_files, read_nyu_splits
from ssl_zoo.model_zoo.weights import load_backbone_weights
from ssl_zoo.modeling.backbones.build import build_backbone_from_cfg
from ssl_zoo.utils import comm
from ssl_zoo.utils.env import amp_dtype_from_cfg
from ssl_zoo.utils.env import device_from_cfg

logger = logging.getLogger(__name__)

__all__ = ["run_depth", "locate_nyu", "PAPER_SCHEDULE"]

OFFICIAL_NAME = "nyuv2"
PAPER_SCHEDULE = {"ITERS": 7500, "BATCH_SIZE": 256, "BASE_LR": 0.16, "WEIGHT_DECAY": 5e-4, "INPUT_SCALE": 0.5,
                  "CROP": (228, 304), "BERHU_C": 0.2, "GRAYSCALE_PROB": 0.3, "BRIGHTNESS": 0.1255,
                  "SATURATION": (0.5, 1.5), "HUE": 0.2}


def locate_nyu(dataset: str, root: str = "") -> Tuple[str, str, bool]:
    """``(labeled .mat, splits.mat, official)`` for ``--dataset nyuv2`` or a folder holding both files."""
    if not dataset:
        raise ValueError(f"--task depth needs --dataset: '{OFFICIAL_NAME}' (nyu_depth_v2/ under the dataset root) "
                         f"or a folder with nyu_depth_v2_labeled.mat and splits.mat")
    if dataset == OFFICIAL_NAME:
        return (*find_nyu_files(resolve_root(root)), True)
    if not os.path.isdir(dataset):
        raise FileNotFoundError(f"--dataset '{dataset}': neither '{OFFICIAL_NAME}' nor an existing folder")
    return (*find_nyu_files(dataset), False)


def _depth_loss(c_fraction: float):
    def loss_fn(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred = F.interpolate(pred, size=target.shape[-2:], mode="bilinear", align_corners=False)
        return berhu_loss(pred, target, target > 0, c_fraction)
    return loss_fn


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset: NYUDepthDataset, batch_size: int, num_workers: int,
             device: torch.device, amp_dtype=None) -> Dict[str, float]:
    """delta_1..3, rms, rel, log10 over the valid pixels of ``dataset`` (predictions upsampled to the targets)."""
    model.eval()
    sums = DepthMetricSums(device)
    for x, d in eval_loader(dataset, batch_size, num_workers):
        x, d = x.to(device), d.to(device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            pred = model(x)
        pred = F.interpolate(pred.float(), size=d.shape[-2:], mode="bilinear", align_corners=False)
        sums.update(pred, d, d > 0)
    return sums.result()


def run_depth(cfg, args) -> List[Dict]:
    """Fine-tune FCRN from ``args.weights`` on the NYU v2 training frames; report the test metrics."""
    c, b = cfg.BENCHMARK.DEPTH, cfg.BENCHMARK
    mat, splits, official = locate_nyu(args.dataset, cfg.DATASETS.ROOT)
    frames = NYUDepthLabeled(mat)
    train_idx, test_idx = read_nyu_splits(splits, len(frames))
    sizes = {"frames": len(frames), "train": len(train_idx), "test": len(test_idx)}
    if official and sizes != OFFICIAL_SIZES:
        raise ValueError(f"{mat}: {sizes} does not match the official NYU v2 labeled release {OFFICIAL_SIZES}; "
                         f"pass the folder as a path (--dataset DIR) to use another copy")
    logger.info(f"Depth data: {mat} ({sizes['frames']} frames of {frames.height}x{frames.width}), "
                f"train {sizes['train']}, test {sizes['test']} ({splits})")
    device = device_from_cfg(cfg)
    amp = amp_dtype_from_cfg(cfg, device)
    torch.manual_seed(b.SEED)
    backbone = build_backbone_from_cfg(cfg)
    description = load_backbone_weights(backbone, args.weights)
    model: FCRN = build_fcrn(backbone, tuple(c.DECODER_CHANNELS))
    common = dict(mean=cfg.INPUT.MEAN, std=cfg.INPUT.STD, scale=c.INPUT_SCALE, crop=tuple(c.CROP))
    train_set = NYUDepthDataset(frames, train_idx, True, augment=DepthAugment(c.BRIGHTNESS, tuple(c.SATURATION), c.HUE,
                                                                               c.GRAYSCALE_PROB), **common)
    test_set = NYUDepthDataset(frames, test_idx, False, **common)
    stats = finetune(distribute(model, device), train_loader(train_set, c.BATCH_SIZE, b.SEED,
                                                             cfg.DATALOADER.NUM_WORKERS),
                     _depth_loss(c.BERHU_C), iters=c.ITERS, base_lr=c.BASE_LR, weight_decay=c.WEIGHT_DECAY,
                     momentum=c.MOMENTUM, lr_steps=tuple(c.LR_STEPS), device=device, amp_dtype=amp, desc="[depth]")
    metrics = evaluate(model, test_set, max(1, min(c.BATCH_SIZE // comm.get_world_size(), 16)),
                       cfg.DATALOADER.NUM_WORKERS, device, amp)
    actual = {k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in c.items() if k in PAPER_SCHEDULE}
    row = {"task": "depth", "mode": "final", "split": f"test ({len(test_idx)})", "train_frames": len(train_idx),
           "protocol": describe_protocol(actual, PAPER_SCHEDULE), "lr": c.BASE_LR, **metrics,
           "decoder_channels": [blk.conv.out_channels for blk in model.decoder],
           "output_stride": model.output_stride, "weights": description, "iters": c.ITERS,
           "batch_size": c.BATCH_SIZE, **stats}
    logger.info(f"Depth on {len(test_idx)} test frames: {metrics}")
    return [row]
