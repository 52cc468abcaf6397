"""Images and targets of a transfer split, the linear protocol's transform, and a feature cache.

Linear transfer (PROTOCOLS.md s.5): no augmentation; the shorter side is resized (bicubic) to
the input resolution ``S`` and the centre ``S x S`` is cropped. The paper uses S = 224 for its
ImageNet R50s; here ``S`` is the pretraining config's ``INPUT.IMAGE_SIZE`` (224 for the paper
configs, 32 for our CIFAR-pretrained ResNet-10), so a backbone sees images at the scale it was
trained on.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Callable, Dict, Optional, Sequence

import torch
import torchvision.transforms as T
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import InterpolationMode

from ssl_zoo.data.readers.records import SplitRecords
from ssl_zoo.utils.file_io import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["RecordImages", "split_targets", "linear_transform", "train_transform", "test_transform",
           "extract_features", "cached", "cache_key"]


class RecordImages(Dataset):
    """``(image tensor, index)`` of the ids of one split, decoded by ``records.load``."""

    def __init__(self, records: SplitRecords, ids: Sequence[str], transform: Callable) -> None:
        self.records, self.ids, self.transform = records, list(ids), transform

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        return self.transform(self.records.load(self.ids[i])), i


def split_targets(records: SplitRecords, ids: Sequence[str]) -> torch.Tensor:
    """int64 ``[N]`` labels, or int8 ``[N, C]`` 1 / 0 / -1 targets of a multi-label set, in ``ids`` order."""
    table = {i: t for rows in records.splits.values() for i, t in rows}
    if records.multilabel:
        return torch.stack([table[i] for i in ids]) if ids else torch.zeros(0, records.num_classes, dtype=torch.int8)
    return torch.tensor([int(table[i]) for i in ids], dtype=torch.int64)


def linear_transform(size: int, mean: Sequence[float], std: Sequence[float]) -> T.Compose:
    """Shorter side to ``size`` (bicubic), centre crop ``size``, normalise (PROTOCOLS.md s.5, linear)."""
    return T.Compose([T.Resize(size, interpolation=InterpolationMode.BICUBIC), T.CenterCrop(size), T.ToTensor(),
                      T.Normalize(mean, std)])


def train_transform(size: int, mean: Sequence[float], std: Sequence[float]) -> T.Compose:
    """Fine-tuning: random resized crop (bicubic) + horizontal flip (PROTOCOLS.md s.5)."""
    return T.Compose([T.RandomResizedCrop(size, interpolation=InterpolationMode.BICUBIC), T.RandomHorizontalFlip(),
                      T.ToTensor(), T.Normalize(mean, std)])


def test_transform(size: int, mean: Sequence[float], std: Sequence[float], crop_fraction: float = 0.875) -> T.Compose:
    """Fine-tuning evaluation: resize to ``round(size / 0.875)`` (256 for 224), centre crop ``size``."""
    return T.Compose([T.Resize(int(round(size / crop_fraction)), interpolation=InterpolationMode.BICUBIC),
                      T.CenterCrop(size), T.ToTensor(), T.Normalize(mean, std)])


@torch.no_grad()
def extract_features(model: nn.Module, dataset: Dataset, batch_size: int, device: torch.device, num_workers: int = 0,
                     amp_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """``[N, D]`` float32 outputs of ``model`` (eval mode) over ``dataset``, in order, on ``device``."""
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    out = []
    try:
        for x, _ in loader:
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                out.append(model(x.to(device, non_blocking=True)).float().flatten(1))
    finally:
        model.train(was_training)
    if not out:
        raise ValueError("no images to extract features from (empty split)")
    return torch.cat(out)


def cache_key(parts: Dict) -> str:
    """16 hex digits of the sha256 of ``parts`` (weights digest, backbone, dataset, split ids, transform)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cached(cache_dir: str, name: str, compute: Callable[[], torch.Tensor], device: torch.device) -> torch.Tensor:
    """``compute()`` stored as ``cache_dir/name.pt`` (float32, atomically), or read back when present."""
    path = os.path.join(cache_dir, f"{name}.pt") if cache_dir else ""
    if path and os.path.isfile(path):
        logger.info(f"Feature cache hit: {path}")
        return torch.load(path, map_location=device, weights_only=True)
    feats = compute()
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        cpu = feats.cpu()
        atomic_write(path, lambda f: torch.save(cpu, f))
        logger.info(f"Cached {tuple(feats.shape)} features at {path}")
    return feats
