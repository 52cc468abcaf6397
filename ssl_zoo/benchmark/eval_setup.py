"""Assemble an evaluation from a config and ``--weights``: :class:`EvalSetup`.

:func:`build_eval_setup` gives the backbone (``MODEL.BACKBONE.*``) with its weights, the
labelled splits (``BENCHMARK.TRAIN / TEST`` or ``--dataset``), the held-out validation
split, device and precision. Every protocol (``knn.py``, ``linear.py``, ``finetune.py``)
takes an :class:`EvalSetup` and returns result rows; :func:`extract` is their one way to
compute features (sharded over processes, gathered in dataset order).

Hyper-parameters are always chosen on the validation split held out from train and the
chosen configuration is reported on test (PROTOCOLS.md s.3-4).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import nn

from ssl_zoo.benchmark.splits import LabelledSplit
from ssl_zoo.data.catalog import build_dataset
from ssl_zoo.data.subset import holdout_split
from ssl_zoo.evaluation.features import extract_features
from ssl_zoo.model_zoo.weights import load_backbone_weights
from ssl_zoo.modeling.backbones.build import build_backbone_from_cfg
from ssl_zoo.utils import comm
from ssl_zoo.utils.env import amp_dtype_from_cfg, device_from_cfg
from ssl_zoo.utils.file_io import cache_dir, file_digest

logger = logging.getLogger(__name__)

__all__ = ["EvalSetup", "build_eval_setup", "eval_dataset_names", "encode", "extract", "feature_dim",
           "IMAGENET_VAL_SIZE", "val_holdout_size"]

# BYOL / SimCLR: hyper-parameters chosen on 10,009 ImageNet train images (PROTOCOLS.md s.3).
IMAGENET_VAL_SIZE = 10009


def val_holdout_size(train_name: str, val_size: int) -> int:
    """``BENCHMARK.VAL_SIZE`` resolved: -1 = 10,009 for ImageNet train sets, else 0 (= VAL_FRACTION)."""
    if val_size < -1:
        raise ValueError(f"BENCHMARK.VAL_SIZE must be -1 (auto), 0 (use VAL_FRACTION) or > 0, got {val_size}")
    if val_size == -1:
        return IMAGENET_VAL_SIZE if train_name.startswith("imagenet") else 0
    return int(val_size)


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
    try:
        f, y = extract_features(model, split.eval_batches(indices, setup.batch_size), setup.device,
                                amp_dtype=setup.amp_dtype, channels_last=setup.channels_last,
                                desc=f"features of {len(indices)} images",
                                total=-(-len(indices[comm.get_rank()::comm.get_world_size()]) // setup.batch_size))
    except ValueError:
        raise ValueError(f"nothing to evaluate on rank {comm.get_rank()}: {len(indices)} images for "
                         f"{comm.get_world_size()} processes") from None
    return _gather_in_order(f, len(indices)), _gather_in_order(y, len(indices))


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
    parts = [weights_desc, file_digest(weights) if os.path.isfile(weights) else weights, cfg.MODEL.BACKBONE.dump(),
             cfg.SEED if weights in ("", "random", "none") else 0, train_name, n_train, cfg.INPUT.IMAGE_SIZE,
             list(cfg.INPUT.MEAN), list(cfg.INPUT.STD), cfg.BENCHMARK.CROP_FRACTION, cfg.INPUT.EVAL_RESIZE]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def build_eval_setup(cfg, weights: str, dataset: str = "") -> EvalSetup:
    """Backbone with ``weights`` loaded (frozen copy semantics: protocols never modify it)."""
    device = device_from_cfg(cfg)
    backbone = build_backbone_from_cfg(cfg)  # random init drawn from SEED (as train_net's iteration 0)
    description = load_backbone_weights(backbone, weights)
    backbone.to(device).eval()
    for p in backbone.parameters():
        p.requires_grad_(False)
    if cfg.MODEL.CHANNELS_LAST:
        backbone.to(memory_format=torch.channels_last)
    train_name, test_name = eval_dataset_names(cfg, dataset)
    b = cfg.BENCHMARK
    rank, world = comm.get_rank(), comm.get_world_size()
    common = dict(image_size=cfg.INPUT.IMAGE_SIZE, mean=cfg.INPUT.MEAN, std=cfg.INPUT.STD, crop_fraction=b.CROP_FRACTION,
                  resize=cfg.INPUT.EVAL_RESIZE,
                  device=device, num_workers=cfg.DATALOADER.NUM_WORKERS, seed=b.SEED, rank=rank, world_size=world)

    def split(name: str) -> LabelledSplit:
        ds = build_dataset(name, root=cfg.DATASETS.ROOT, train=True, corrupt_policy=cfg.DATASETS.CORRUPT_POLICY)
        return LabelledSplit(ds, **common)

    train, test = split(train_name), split(test_name)
    rest, val = holdout_split(train.targets, fraction=b.VAL_FRACTION, size=val_holdout_size(train_name, b.VAL_SIZE),
                              seed=b.VAL_SEED)
    logger.info(f"Evaluation data: train '{train_name}' ({len(train)} images: {len(rest)} + {len(val)} held out for "
                f"validation), test '{test_name}' ({len(test)} images), {train.num_classes} classes")
    setup = EvalSetup(backbone=backbone, train=train, test=test, rest_idx=rest, val_idx=val, device=device,
                      amp_dtype=amp_dtype_from_cfg(cfg, device), channels_last=cfg.MODEL.CHANNELS_LAST,
                      batch_size=cfg.TEST.IMS_PER_BATCH, seed=b.SEED,
                      cache_dir=b.CACHE_DIR or os.path.join(cache_dir(), "features"),
                      cache_key=_cache_key(cfg, description, weights, train_name, len(train)),
                      weights_description=description, dataset_names=(train_name, test_name))
    return setup


def feature_dim(setup: EvalSetup) -> int:
    """D of the backbone's features (one dummy image, eval mode)."""
    x = torch.zeros(1, 3, setup.train.image_size, setup.train.image_size, device=setup.device)
    return encode(setup, setup.backbone.eval(), x).shape[1]
