"""``tools/benchmark.py --task transfer``: linear and fine-tuned transfer (PROTOCOLS.md s.5).

``--dataset`` is one of the 12 names of :mod:`.catalog`, ``all`` (every dataset found under
the datasets root; absent ones are listed and skipped), or the path of an ImageFolder with
``train/`` and ``test/`` (validation: 10% of each class held out, seeded).
``--mode linear | finetune | both``; ``--budget small`` reduces the fine-tuning grid and steps.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from ssl_zoo.benchmark.transfer.catalog import TRANSFER_DATASETS, TransferDataset, get_transfer_dataset
from ssl_zoo.benchmark.transfer.data import (RecordImages, cache_key, cached, extract_features, linear_transform,
                                             split_targets, test_transform, train_transform)
from ssl_zoo.benchmark.transfer.finetune import FinetuneConfig, run_finetune_transfer
from ssl_zoo.benchmark.transfer.lbfgs import regularisation_grid
from ssl_zoo.benchmark.transfer.linear import LinearTransferConfig, run_linear_transfer
from ssl_zoo.benchmark.transfer.metrics import METRIC_NAMES
from ssl_zoo.benchmark.transfer.report import protocol_text
from ssl_zoo.benchmark.transfer.splits import SplitRule, check_sizes, load_or_draw_splits
from ssl_zoo.data.catalog import resolve_root
from ssl_zoo.data.readers.image_folder import read_image_folder_splits
from ssl_zoo.data.readers.records import SplitRecords
from ssl_zoo.model_zoo.weights import load_backbone_weights
from ssl_zoo.modeling.backbones.build import build_backbone_from_cfg
from ssl_zoo.utils.env import amp_dtype_from_cfg
from ssl_zoo.utils.env import device_from_cfg
from ssl_zoo.utils.file_io import cache_dir
from ssl_zoo.utils.file_io import file_digest

logger = logging.getLogger(__name__)

__all__ = ["run_transfer", "linear_config_from_cfg", "finetune_config_from_cfg", "resolve_datasets", "MODES"]

MODES = ("linear", "finetune", "both")


def linear_config_from_cfg(cfg) -> LinearTransferConfig:
    t = cfg.BENCHMARK.TRANSFER
    return LinearTransferConfig(regularisation_grid(t.LAMBDA_NUM, t.LAMBDA_MIN, t.LAMBDA_MAX), t.TOL, t.MAX_ITER,
                                bool(t.PRECONDITION))


def finetune_config_from_cfg(cfg, budget: str = "full") -> FinetuneConfig:
    f = cfg.BENCHMARK.TRANSFER.FINETUNE
    if budget not in ("full", "small"):
        raise ValueError(f"--budget must be 'full' or 'small', got '{budget}'")
    small = budget == "small"
    return FinetuneConfig(lrs=tuple(f.SMALL_LRS if small else f.LRS),
                          weight_decays=tuple(f.SMALL_WEIGHT_DECAYS if small else f.WEIGHT_DECAYS),
                          steps=int(f.SMALL_STEPS if small else f.STEPS), batch_size=int(f.BATCH_SIZE),
                          momentum=float(f.MOMENTUM), seed=int(cfg.BENCHMARK.SEED), budget=budget)


def resolve_datasets(spec: str, datasets_root: str) -> List[Tuple[str, Optional[TransferDataset], str]]:
    """``(name, catalogue entry or None for an ImageFolder path, root)`` of ``--dataset``."""
    if not spec:
        raise ValueError("--task transfer needs --dataset NAME, 'all' or the path of an ImageFolder with train/ and test/")
    if os.path.isdir(os.path.join(spec, "train")):
        return [(os.path.basename(os.path.normpath(spec)), None, os.path.abspath(spec))]
    names = list(TRANSFER_DATASETS) if spec == "all" else [spec]
    return [(n, get_transfer_dataset(n), get_transfer_dataset(n).root(datasets_root)) for n in names]


class _Backbone:
    """The evaluated backbone (frozen, eval mode) and what identifies it in cache keys."""

    def __init__(self, cfg, weights: str) -> None:
        self.device = device_from_cfg(cfg)
        self.model: nn.Module = build_backbone_from_cfg(cfg)
        self.description = load_backbone_weights(self.model, weights)
        self.model.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        random = weights in ("", "random", "none")
        self.identity = {"weights": file_digest(weights) if os.path.isfile(weights) else weights,
                         "backbone": cfg.MODEL.BACKBONE.dump(), "seed": cfg.SEED if random else 0}
        with torch.no_grad():
            s = cfg.INPUT.IMAGE_SIZE
            self.dim = self.model(torch.zeros(1, 3, s, s, device=self.device)).flatten(1).shape[1]


def _linear(cfg, bb: _Backbone, name: str, records: SplitRecords, splits: Dict[str, List[str]],
            targets: Dict[str, torch.Tensor], metric: str) -> Dict:
    size, mean, std = cfg.INPUT.IMAGE_SIZE, list(cfg.INPUT.MEAN), list(cfg.INPUT.STD)
    transform = linear_transform(size, mean, std)
    amp = amp_dtype_from_cfg(cfg, bb.device)
    folder = cfg.BENCHMARK.CACHE_DIR or os.path.join(cache_dir(), "features")
    feats = {}
    for s in ("train", "val", "test"):
        ids_digest = hashlib.sha256("\n".join(splits[s]).encode()).hexdigest()
        key = cache_key({**bb.identity, "dataset": name, "root": os.path.abspath(records.root), "split": s,
                         "ids": ids_digest, "transform": ["shorter-side-bicubic+centre-crop", size, mean, std],
                         "amp": str(amp)})
        feats[s] = cached(folder, f"transfer-{name}-{s}-{key}", lambda s=s: extract_features(
            bb.model, RecordImages(records, splits[s], transform), cfg.TEST.IMS_PER_BATCH, bb.device,
            cfg.DATALOADER.NUM_WORKERS, amp), bb.device)
    return run_linear_transfer(feats, targets, records.num_classes, metric, linear_config_from_cfg(cfg))


def _finetune(cfg, bb: _Backbone, records: SplitRecords, splits: Dict[str, List[str]], targets: Dict[str, torch.Tensor],
              metric: str, budget: str) -> Dict:
    size, mean, std = cfg.INPUT.IMAGE_SIZE, cfg.INPUT.MEAN, cfg.INPUT.STD
    aug, plain = train_transform(size, mean, std), test_transform(size, mean, std, cfg.BENCHMARK.CROP_FRACTION)
    data = {"train": RecordImages(records, splits["train"], aug),
            "train+val": RecordImages(records, splits["train"] + splits["val"], aug),
            "val": RecordImages(records, splits["val"], plain), "test": RecordImages(records, splits["test"], plain)}
    tg = {**targets, "train+val": torch.cat([targets["train"], targets["val"]])}
    return run_finetune_transfer(bb.model, bb.dim, records.num_classes, data, tg, metric,
                                 finetune_config_from_cfg(cfg, budget), bb.device, cfg.DATALOADER.NUM_WORKERS,
                                 cfg.TEST.IMS_PER_BATCH)


def run_transfer(cfg, args) -> List[Dict]:
    """Run the transfer protocols of ``args.mode`` on ``args.dataset``; returns one row per (dataset, mode).

    Args:
        cfg: the pretraining config (backbone, ``INPUT.IMAGE_SIZE`` / MEAN / STD, BENCHMARK.TRANSFER).
        args: ``dataset``, ``mode`` (linear / finetune / both), ``weights``, ``budget`` (full / small).
    """
    mode, budget = getattr(args, "mode", None) or "linear", getattr(args, "budget", None) or "full"
    if mode not in MODES:
        raise ValueError(f"--mode for --task transfer must be one of {MODES}, got '{mode}'")
    entries = resolve_datasets(args.dataset, resolve_root(cfg.DATASETS.ROOT))
    bb = _Backbone(cfg, args.weights)
    t = cfg.BENCHMARK.TRANSFER
    split_dir = t.SPLIT_DIR or os.path.join(cache_dir(), "transfer_splits")
    rows = []
    for name, entry, root in entries:
        try:
            records = entry.reader(root) if entry else read_image_folder_splits(root)
        except FileNotFoundError as e:
            if len(entries) == 1:
                raise
            logger.warning(f"skipping {name}: {e}")
            rows.append({"task": "transfer", "dataset": entry.display, "status": "missing", "error": str(e)})
            continue
        rule = entry.rule if entry else (SplitRule("official") if "val" in records.splits else SplitRule("fraction"))
        tag = name if entry else f"{name}-{hashlib.sha256(root.encode()).hexdigest()[:8]}"
        splits = load_or_draw_splits(records, rule, t.SPLIT_SEED, os.path.join(split_dir, f"{tag}_seed{t.SPLIT_SEED}.json"))
        mismatches = check_sizes(name, splits, entry.sizes if entry else None)
        targets = {s: split_targets(records, splits[s]) for s in ("train", "val", "test")}
        metric = entry.metric if entry else "top1"
        base = {"task": "transfer", "dataset": entry.display if entry else root, "metric": METRIC_NAMES[metric],
                "train": f"{name}:train({len(splits['train'])})+val({len(splits['val'])})",
                "test": f"{name}:test({len(splits['test'])})", "split_size_mismatches": mismatches,
                "missing_images": len(records.missing)}
        for m in (("linear", "finetune") if mode == "both" else (mode,)):
            t0 = time.perf_counter()
            r = (_linear(cfg, bb, tag, records, splits, targets, metric) if m == "linear"
                 else _finetune(cfg, bb, records, splits, targets, metric, budget))
            paper = (entry.paper_linear if m == "linear" else entry.paper_finetune) if entry else None
            rows.append({**base, **r, "mode": f"{m}:{metric}", "top1": r["score"], "paper_byol": paper,
                         "protocol": protocol_text(m, cfg, len(splits["val"]), rule, budget, r),
                         "seconds": time.perf_counter() - t0})
            logger.info(f"transfer {name} {m}: {r['score']:.2f} ({METRIC_NAMES[metric]})")
    return rows
