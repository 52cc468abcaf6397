"""Data: datasets (``datasets.py``, ``builtin.py``), deterministic sampling (``samplers.py``),
training / evaluation pipelines (``build.py``) and augmentations (``transforms/``)."""
from .build import TrainData, build_eval_loader, build_train_loader, make_eval_loader, make_train_data
from .datasets import (DATASET_REGISTRY, ImageFolderDataset, InMemoryImageDataset, UnreadableImageError,
                       build_dataset, resolve_root)
from .samplers import InfiniteBatchSampler, SeededDataset, mix_seed

__all__ = [
    "DATASET_REGISTRY", "ImageFolderDataset", "InMemoryImageDataset", "UnreadableImageError", "build_dataset",
    "resolve_root", "InfiniteBatchSampler", "SeededDataset", "mix_seed", "TrainData", "build_train_loader",
    "make_train_data", "build_eval_loader", "make_eval_loader",
]
