"""The ``INPUT.BACKEND "gpu"`` training path for file-backed datasets.

DataLoader workers only read file bytes (``EncodedFiles``); the main process decodes the
batch on the training device (``transforms.decode``: nvJPEG, batched, on CUDA), zero-pads it
and runs ``BatchedMultiViewAugment`` there, random resized crop included, with the same
random parameters and semantics as the other paths (``transforms.geometry`` boxes drawn per
image size; antialiased bicubic as PIL). At ImageNet scale this removes the per-image PIL
work (decode + two crops + resizes) from the CPU workers, which is what starves a GPU.
"""
from __future__ import annotations

from typing import Any, List, Sequence, Tuple

import torch
from torch.utils.data import Dataset
from torchvision.io import read_file

from ssl_zoo.data.samplers import mix_seed
from ssl_zoo.data.transforms.batched import BatchedMultiViewAugment
from ssl_zoo.data.transforms.decode import decode_images, pad_to_batch

__all__ = ["EncodedFiles", "collate_encoded", "DecodeAugmentOnDevice"]


class EncodedFiles(Dataset):
    """``dataset[i] -> (uint8 [N] file bytes, target, path)`` of a file-backed dataset.

    Args:
        dataset: a dataset with ``samples`` = list of (path, target) (``FileImageDataset``).
    """

    def __init__(self, dataset: Dataset) -> None:
        if not hasattr(dataset, "samples"):
            raise ValueError(f"INPUT.BACKEND 'gpu' needs a file-backed dataset (with .samples), got {type(dataset).__name__}")
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset.samples)

    def __getitem__(self, item) -> Tuple[torch.Tensor, int, str]:
        index = item[0] if isinstance(item, tuple) else item  # the sampler may pass (index, seed)
        path, target = self.dataset.samples[index]
        return read_file(path), int(target), path


def collate_encoded(items: Sequence[Tuple[torch.Tensor, int, str]]) -> Tuple[List[torch.Tensor], torch.Tensor, List[str]]:
    """Files of different lengths stay a list: ``(list of uint8 [N_i], int64 [B], paths)``."""
    data, targets, paths = zip(*items)
    return list(data), torch.tensor(targets, dtype=torch.int64), list(paths)


class DecodeAugmentOnDevice:
    """``(files, labels, paths), iteration -> (V x float [B,3,S,S] normalised, labels)`` on ``device``.

    The generator is seeded by (seed, iteration, rank) as in the "batched" path, so a resumed
    run repeats the augmentation exactly (decoding is deterministic on a given device).
    """

    def __init__(self, augment: BatchedMultiViewAugment, device: torch.device, seed: int, rank: int) -> None:
        if not augment.crop:
            raise ValueError("DecodeAugmentOnDevice needs BatchedMultiViewAugment(crop=True)")
        self.augment, self.device, self.seed, self.rank = augment, device, seed, rank

    def __call__(self, batch: Tuple[List[torch.Tensor], torch.Tensor, List[str]], iteration: int) -> Tuple[Any, torch.Tensor]:
        files, labels, paths = batch
        images, sizes = pad_to_batch(decode_images(files, self.device, names=paths))
        g = torch.Generator().manual_seed(mix_seed(self.seed, iteration, self.rank))
        return self.augment(images, generator=g, image_sizes=sizes), labels.to(self.device, non_blocking=True)
