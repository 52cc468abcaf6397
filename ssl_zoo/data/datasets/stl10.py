"""STL-10 (Coates et al. 2011), 96 px, in memory.

Read from the official binary archive ``root/stl10_binary/*.bin`` (the layout torchvision's
``STL10`` reads; read here directly because torchvision insists on the archive's MD5 sums,
which a partial or converted copy fails) or from an ImageFolder copy
``root/stl10/{train,test,unlabeled}``.
"""
from __future__ import annotations

import os
from typing import List, Tuple

import numpy as np
import torch

from ssl_zoo.data.datasets.base import ROOT_HINT, InMemoryImageDataset
from ssl_zoo.data.datasets.in_memory import load_image_folder_in_memory

__all__ = ["STL10_CLASSES", "STL10_SPLITS", "read_stl10_binary", "load_stl10"]


STL10_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
# split -> (image file, label file or None) in the official archive
STL10_SPLITS = {"train": ("train_X.bin", "train_y.bin"), "test": ("test_X.bin", "test_y.bin"),
                "unlabeled": ("unlabeled_X.bin", None)}


def read_stl10_binary(folder: str, split: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """Read one split of the official ``stl10_binary`` folder.

    Format (STL-10 README): images are uint8, 3 x 96 x 96 each, channel-major and
    column-major inside a channel; labels are uint8 1..10.

    Returns:
        (uint8 ``[N, 3, 96, 96]`` RGB rows-first, int64 ``[N]`` labels 0..9 or -1 when unlabeled).
    """
    image_file, label_file = STL10_SPLITS[split]
    path = os.path.join(folder, image_file)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"STL-10: {path} not found ({ROOT_HINT}).")
    size = os.path.getsize(path)
    if size % (3 * 96 * 96):
        raise ValueError(f"STL-10: {path} has {size} bytes, not a multiple of 3*96*96 (truncated?)")
    raw = np.memmap(path, dtype=np.uint8, mode="r").reshape(-1, 3, 96, 96)
    images = torch.from_numpy(np.ascontiguousarray(raw.transpose(0, 1, 3, 2)))  # one copy, no 2nd buffer
    if label_file is None:
        return images, torch.full((images.shape[0],), -1, dtype=torch.int64)
    labels = torch.from_numpy(np.fromfile(os.path.join(folder, label_file), dtype=np.uint8).astype(np.int64) - 1)
    if labels.shape[0] != images.shape[0] or (labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < 10):
        raise ValueError(f"STL-10: {label_file} holds {labels.shape[0]} labels in 1..10 expected for "
                         f"{images.shape[0]} images")
    return images, labels


def _stl10_classes(folder: str) -> List[str]:
    path = os.path.join(folder, "class_names.txt")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            names = [n.strip() for n in f if n.strip()]
        if len(names) == 10:
            return names
    return list(STL10_CLASSES)


def _stl10_split(root: str, split: str, transform, policy) -> InMemoryImageDataset:
    binary = os.path.join(root, "stl10_binary")
    if os.path.isdir(binary):
        images, targets = read_stl10_binary(binary, split)
        return InMemoryImageDataset(images, targets, _stl10_classes(binary), transform)
    copy = os.path.join(root, "stl10", split)
    if os.path.isdir(copy):
        ds = load_image_folder_in_memory(copy, transform=transform, corrupt_policy=policy)
        if split == "unlabeled":  # sub-folders of an unlabeled copy are not classes
            ds.targets = torch.full_like(ds.targets, -1)
            ds.classes = list(STL10_CLASSES)
        return ds
    raise FileNotFoundError(f"STL-10: neither {binary} (official binary archive, extracted) nor {copy} "
                            f"(ImageFolder copy) exists; {ROOT_HINT}.")


def load_stl10(root: str, splits: Tuple[str, ...], transform, policy) -> InMemoryImageDataset:
    """One split, or several concatenated in order (train + unlabeled: targets -1 for the latter)."""
    parts = [_stl10_split(root, s, None, policy) for s in splits]
    if len(parts) == 1:
        parts[0].transform = transform
        return parts[0]
    ds = InMemoryImageDataset(torch.cat([p.images for p in parts]), torch.cat([p.targets for p in parts]),
                              parts[0].classes, transform)
    ds.corrupt_files = [f for p in parts for f in p.corrupt_files]
    return ds
