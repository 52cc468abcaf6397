"""Data: datasets (``datasets.py``, ``catalog.py``, ``builtin.py``), subsets (``subset.py``),
deterministic sampling (``samplers.py``), training / evaluation pipelines (``build.py``) and
augmentations (``transforms/``)."""
from .build import TrainData, build_eval_loader, build_train_loader, make_eval_loader, make_train_data
from .catalog import FileListDataset, read_file_list, read_stl10_binary
from .datasets import (DATASET_REGISTRY, FileImageDataset, ImageFolderDataset, InMemoryImageDataset,
                       UnreadableImageError, build_dataset, resolve_root)
from .samplers import InfiniteBatchSampler, SeededDataset, mix_seed
from .subset import SubsetSpec, apply_subset, subset_from_cfg, subset_indices, take_subset

__all__ = [
    "DATASET_REGISTRY", "FileImageDataset", "ImageFolderDataset", "InMemoryImageDataset", "FileListDataset",
    "UnreadableImageError", "build_dataset", "resolve_root", "read_file_list", "read_stl10_binary",
    "SubsetSpec", "subset_indices", "take_subset", "apply_subset", "subset_from_cfg",
    "InfiniteBatchSampler", "SeededDataset", "mix_seed", "TrainData", "build_train_loader",
    "make_train_data", "build_eval_loader", "make_eval_loader",
]
