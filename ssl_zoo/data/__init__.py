"""Data: the dataset catalog (``catalog.py``: names and paths -> datasets), dataset classes and
the built-in names (``datasets/``), subsets (``subset.py``), deterministic sampling
(``samplers.py``), training / evaluation pipelines (``build.py``) and augmentations (``transforms/``)."""
from .datasets import builtin as _builtin  # noqa: F401  registers the built-in dataset names
from .build import TrainData, build_eval_loader, build_train_loader, make_eval_loader, make_train_data
from .catalog import DATASET_REGISTRY, build_dataset, resolve_root
from .datasets import (FileImageDataset, FileListDataset, ImageFolderDataset, InMemoryImageDataset,
                       UnreadableImageError, read_file_list, read_stl10_binary)
from .samplers import InfiniteBatchSampler, SeededDataset, mix_seed
from .subset import SubsetSpec, apply_subset, subset_from_cfg, subset_indices, take_subset

__all__ = [
    "DATASET_REGISTRY", "FileImageDataset", "ImageFolderDataset", "InMemoryImageDataset", "FileListDataset",
    "UnreadableImageError", "build_dataset", "resolve_root", "read_file_list", "read_stl10_binary",
    "SubsetSpec", "subset_indices", "take_subset", "apply_subset", "subset_from_cfg",
    "InfiniteBatchSampler", "SeededDataset", "mix_seed", "TrainData", "build_train_loader",
    "make_train_data", "build_eval_loader", "make_eval_loader",
]
