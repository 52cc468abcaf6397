"""Assemble an evaluation from a config and ``--weights``, and record its results.

``tools/benchmark.py`` is a thin command line over these functions:

* :func:`build_eval_setup` -- backbone (``MODEL.BACKBONE.*``) + weights, the labelled splits
  (``BENCHMARK.TRAIN / TEST``), the held-out validation split, device and precision;
* :func:`semi_subset` -- the labelled 1% / 10% subset (SimCLR's lists for ImageNet,
  class-balanced seeded fractions elsewhere), disjoint from the validation split;
* :func:`write_results` -- ``OUTPUT_DIR/results.json`` and one appended CSV row per result.
"""
from __future__ import annotations

import csv
import datetime
import hashlib
import json
import logging
import os
from typing import Dict, List, Optional, Sequence

import torch

from ssl_zoo.data.datasets import build_dataset
from ssl_zoo.data.subset import holdout_split, subset_indices
from ssl_zoo.evaluation.data import LabelledSplit
from ssl_zoo.evaluation.protocols import EvalSetup, LinearConfig, SemiConfig
from ssl_zoo.evaluation.weights import load_backbone_for_eval
from ssl_zoo.utils import comm
from ssl_zoo.utils.file_io import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["eval_dataset_names", "build_eval_setup", "linear_config", "semi_config", "semi_subset",
           "write_results", "CSV_COLUMNS", "SIMCLR_SUBSET_URL"]

# SimCLR's fixed ImageNet subsets (Chen et al. 2020, used by BYOL App. C.1): one file name per line.
SIMCLR_SUBSET_URL = "https://raw.githubusercontent.com/google-research/simclr/master/imagenet_subsets/{}percent.txt"
CSV_COLUMNS = ("time", "task", "mode", "top1", "top5", "best_lr", "best_epochs", "seconds", "weights", "train",
               "test", "backbone", "output_dir", "AP50", "AP", "AP75")


def eval_dataset_names(cfg, dataset: str = "") -> tuple:
    """``(train, test)`` names: ``--dataset NAME`` -> NAME_train / NAME_test (NAME_val for
    ImageNet), else ``BENCHMARK.TRAIN / TEST``, else the kNN monitor's ``DATASETS.KNN_*``."""
    if dataset:
        test_split = "val" if dataset.startswith("imagenet") and "imagenette" not in dataset else "test"
        return f"{dataset}_train", f"{dataset}_{test_split}"
    train = cfg.BENCHMARK.TRAIN or cfg.DATASETS.KNN_TRAIN
    test = cfg.BENCHMARK.TEST or cfg.DATASETS.KNN_TEST
    if not train or not test:
        raise ValueError("no evaluation dataset: pass --dataset NAME or set BENCHMARK.TRAIN and BENCHMARK.TEST "
                         "(or DATASETS.KNN_TRAIN / KNN_TEST) in the config")
    return train, test


def _cache_key(cfg, weights_desc: str, weights: str, train_name: str, n_train: int) -> str:
    from ssl_zoo.utils.file_io import file_digest

    parts = [weights_desc, file_digest(weights) if os.path.isfile(weights) else weights, cfg.MODEL.BACKBONE.dump(),
             cfg.SEED if weights in ("", "random", "none") else 0, train_name, n_train, cfg.INPUT.IMAGE_SIZE,
             list(cfg.INPUT.MEAN), list(cfg.INPUT.STD), cfg.BENCHMARK.CROP_FRACTION]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def build_eval_setup(cfg, weights: str, dataset: str = "") -> EvalSetup:
    """Backbone with ``weights`` loaded (frozen copy semantics: protocols never modify it)."""
    from ssl_zoo.engine.defaults import amp_dtype_from_cfg
    from ssl_zoo.model_zoo.download import cache_dir
    from ssl_zoo.modeling.backbones.build import build_backbone_from_cfg
    from ssl_zoo.utils.env import device_from_cfg

    device = device_from_cfg(cfg)
    backbone = build_backbone_from_cfg(cfg)  # random init drawn from SEED (as train_net's iteration 0)
    description = load_backbone_for_eval(backbone, weights)
    backbone.to(device).eval()
    for p in backbone.parameters():
        p.requires_grad_(False)
    if cfg.MODEL.CHANNELS_LAST:
        backbone.to(memory_format=torch.channels_last)
    train_name, test_name = eval_dataset_names(cfg, dataset)
    b = cfg.BENCHMARK
    rank, world = comm.get_rank(), comm.get_world_size()
    common = dict(image_size=cfg.INPUT.IMAGE_SIZE, mean=cfg.INPUT.MEAN, std=cfg.INPUT.STD, crop_fraction=b.CROP_FRACTION,
                  device=device, num_workers=cfg.DATALOADER.NUM_WORKERS, seed=b.SEED, rank=rank, world_size=world)

    def split(name: str) -> LabelledSplit:
        ds = build_dataset(name, root=cfg.DATASETS.ROOT, train=True, corrupt_policy=cfg.DATASETS.CORRUPT_POLICY)
        return LabelledSplit(ds, **common)

    train, test = split(train_name), split(test_name)
    rest, val = holdout_split(train.targets, fraction=b.VAL_FRACTION, size=b.VAL_SIZE, seed=b.VAL_SEED)
    logger.info(f"Evaluation data: train '{train_name}' ({len(train)} images: {len(rest)} + {len(val)} held out for "
                f"validation), test '{test_name}' ({len(test)} images), {train.num_classes} classes")
    setup = EvalSetup(backbone=backbone, train=train, test=test, rest_idx=rest, val_idx=val, device=device,
                      amp_dtype=amp_dtype_from_cfg(cfg, device), channels_last=cfg.MODEL.CHANNELS_LAST,
                      batch_size=cfg.TEST.IMS_PER_BATCH, seed=b.SEED,
                      cache_dir=b.CACHE_DIR or os.path.join(cache_dir(), "features"),
                      cache_key=_cache_key(cfg, description, weights, train_name, len(train)),
                      weights_description=description, dataset_names=(train_name, test_name))
    return setup


def linear_config(cfg) -> LinearConfig:
    c = cfg.BENCHMARK.LINEAR
    return LinearConfig(lrs=tuple(c.LRS), epochs=c.EPOCHS, batch_size=c.BATCH_SIZE, momentum=c.MOMENTUM,
                        nesterov=c.NESTEROV, weight_decay=c.WEIGHT_DECAY, fast_aug_copies=c.FAST_AUG_COPIES)


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


def semi_subset(cfg, setup: EvalSetup, percent: int) -> torch.Tensor:
    """Indices (into train) of the labelled ``percent``% subset, outside the validation split.

    ImageNet without ``BENCHMARK.SEMI.SUBSET_LIST``: SimCLR's public list, downloaded once
    into the cache (its images that fall in the held-out validation split are dropped, as
    they must not be both trained and selected on). Elsewhere: ``percent``% of every class
    of the non-validation images, drawn with ``SUBSET_SEED`` (the 1% subset is inside the 10%).
    """
    if percent not in (1, 10) and not cfg.BENCHMARK.SEMI.SUBSET_LIST:
        logger.warning(f"semi-supervised with {percent}% of the labels (the protocol uses 1% and 10%)")
    path = cfg.BENCHMARK.SEMI.SUBSET_LIST
    if not path and setup.dataset_names[0].startswith("imagenet_"):
        from ssl_zoo.model_zoo.download import download

        path = download(SIMCLR_SUBSET_URL.format(percent), filename=f"simclr_imagenet_{percent}percent.txt")
    if path:
        idx = _read_subset_list(path, setup.train.dataset)
        keep = ~torch.isin(idx, setup.val_idx)
        if not keep.all():
            logger.info(f"{int((~keep).sum())} listed images are in the validation split and are left out")
        return idx[keep]
    rest = setup.rest_idx
    local = subset_indices(setup.train.targets[rest], fraction=percent / 100.0, seed=cfg.BENCHMARK.SEMI.SUBSET_SEED)
    return rest[local]


def write_results(rows: List[Dict], output_dir: str, csv_path: str, meta: Dict) -> None:
    """``output_dir/results.json`` (rows + meta, atomically) and one CSV row per result (appended)."""
    if not comm.is_main_process():
        return
    os.makedirs(output_dir, exist_ok=True)
    payload = json.dumps({"meta": meta, "results": rows}, indent=2, default=float).encode()
    atomic_write(os.path.join(output_dir, "results.json"), lambda f: f.write(payload))
    if not csv_path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(csv_path)), exist_ok=True)
    new = not os.path.isfile(csv_path)
    with open(csv_path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        if new:
            writer.writeheader()
        now = datetime.datetime.now().isoformat(timespec="seconds")
        for r in rows:
            writer.writerow({**{k: meta.get(k, "") for k in CSV_COLUMNS}, **r, "time": now, "output_dir": output_dir})
