"""The dataset catalog: names -> datasets, and :func:`build_dataset` for names and paths.

Names (``DATASET_REGISTRY``, filled by :mod:`ssl_zoo.data.datasets.builtin`) resolve under a
root: the explicit ``root`` argument, else ``$SSL_ZOO_DATASETS``, else ``./datasets``. A path is
a directory (an ImageFolder of class folders, or any folder of images read without labels: the
rule is in :mod:`ssl_zoo.data.datasets.unlabeled_folder`) or a file list. A missing directory raises ``FileNotFoundError``
naming the full path tried and how to point ssl_zoo at the data. Subsets
(``build_dataset(..., subset=SubsetSpec(...))``) are drawn in ``subset.py``.
"""
from __future__ import annotations

import os
from typing import Callable, Optional

from torch.utils.data import Dataset

from ssl_zoo.data.datasets.base import CORRUPT_POLICIES, ImageFolderDataset
from ssl_zoo.data.datasets.file_list import FileListDataset, read_file_list
from ssl_zoo.data.datasets.unlabeled_folder import FOLDER_LABELS, UnlabeledFolderDataset, folder_layout
from ssl_zoo.data.subset import apply_subset
from ssl_zoo.utils.registry import Registry

__all__ = ["DATASET_REGISTRY", "UNLABELED_NAMES", "build_dataset", "has_labels", "register_split_names", "resolve_root"]

DATASET_REGISTRY = Registry("DATASET")
DATASET_REGISTRY.__doc__ = """Named datasets: ``f(root, train, transform, corrupt_policy) -> Dataset``."""

# Registered names whose images carry no labels (target -1); every other name is labelled.
UNLABELED_NAMES = {"stl10_unlabeled"}


def resolve_root(root: Optional[str] = None) -> str:
    """Dataset root: ``root`` if given and non-empty, else ``$SSL_ZOO_DATASETS``, else ``./datasets``."""
    return os.path.abspath(os.path.expanduser(root or os.environ.get("SSL_ZOO_DATASETS") or "./datasets"))


def register_split_names(base: str, fn: Callable, train_suffix: str = "train", test_suffix: str = "test") -> None:
    """Register ``base`` (split from the ``train`` argument) and ``base_<split>`` (split fixed)."""
    DATASET_REGISTRY.register(fn, name=base)
    DATASET_REGISTRY.register(lambda root, train, transform, policy: fn(root, True, transform, policy),
                              name=f"{base}_{train_suffix}")
    DATASET_REGISTRY.register(lambda root, train, transform, policy: fn(root, False, transform, policy),
                              name=f"{base}_{test_suffix}")


def _is_dir_unlabeled(path: str, folder_labels: str) -> bool:
    if folder_labels not in FOLDER_LABELS:
        raise ValueError(f"DATASETS.FOLDER_LABELS must be one of {FOLDER_LABELS}, got {folder_labels!r}")
    if folder_labels != "auto":
        return folder_labels == "none"
    return folder_layout(path) == "unlabeled"


def has_labels(name_or_path: str, folder_labels: str = "auto") -> bool:
    """Whether ``build_dataset(name_or_path)`` gives labelled images, without building it.

    Registered names: all but :data:`UNLABELED_NAMES`; a directory: class folders (the rule
    of :func:`~ssl_zoo.data.datasets.unlabeled_folder.folder_layout`, or ``folder_labels``); a
    file list: lines with labels.
    """
    if name_or_path in DATASET_REGISTRY:
        return name_or_path not in UNLABELED_NAMES
    if os.path.isdir(name_or_path):
        return not _is_dir_unlabeled(name_or_path, folder_labels)
    if os.path.isfile(name_or_path):
        return bool(read_file_list(name_or_path)[1])
    return True  # unknown: build_dataset will name the problem


def build_dataset(name_or_path: str, root: Optional[str] = None, train: bool = True,
                  transform: Optional[Callable] = None, corrupt_policy: str = "fail", subset=None,
                  folder_labels: str = "auto") -> Dataset:
    """Build a dataset by registry name, ImageFolder path or file-list path.

    Args:
        name_or_path: a ``DATASET_REGISTRY`` name (``builtin_cifar10_train``, ``cifar10_test``,
            ``cifar100_train``, ``imagenet_val``, ``stl10_unlabeled``, ``imagenette_val``, ...;
            a bare ``cifar10`` takes the split from ``train``), the path of an existing
            ImageFolder directory, or the path of a text file of ``<path> <label>`` lines
            (:class:`~ssl_zoo.data.datasets.file_list.FileListDataset`; paths relative to an explicit
            ``root``, else to the list's folder).
        root: dataset root for names (see :func:`resolve_root`).
        train: split for bare names; ignored for paths and names with a split suffix.
        transform: applied to each PIL image in ``__getitem__``.
        corrupt_policy: "fail" or "skip" (see :class:`~ssl_zoo.data.datasets.base.FileImageDataset`).
        subset: optional :class:`~ssl_zoo.data.subset.SubsetSpec`: keep a class-balanced,
            seeded fraction or number of images per class (same kind of dataset, with
            ``subset_indices`` into the full set).
        folder_labels: for a directory: "auto" (class folders or unlabeled by the rule of
            :func:`~ssl_zoo.data.datasets.unlabeled_folder.folder_layout`), "class_folders"
            (ImageFolder) or "none" (:class:`UnlabeledFolderDataset`, every image, target -1).

    Returns:
        :class:`InMemoryImageDataset` (built-in, CIFAR, STL-10), :class:`ImageFolderDataset`,
        :class:`UnlabeledFolderDataset` or :class:`~ssl_zoo.data.datasets.file_list.FileListDataset`.

    Raises:
        FileNotFoundError: the data directory is missing (the message names the full path).
        KeyError: neither a known name nor an existing directory or file.
    """
    return apply_subset(_build_full_dataset(name_or_path, root, train, transform, corrupt_policy, folder_labels),
                        subset)


def _build_full_dataset(name_or_path: str, root: Optional[str], train: bool, transform: Optional[Callable],
                        corrupt_policy: str, folder_labels: str) -> Dataset:
    if corrupt_policy not in CORRUPT_POLICIES:
        raise ValueError(f"corrupt_policy must be one of {CORRUPT_POLICIES}, got {corrupt_policy!r}")
    if name_or_path in DATASET_REGISTRY:
        return DATASET_REGISTRY.get(name_or_path)(resolve_root(root), train, transform, corrupt_policy)
    if os.path.isdir(name_or_path):
        if _is_dir_unlabeled(name_or_path, folder_labels):
            return UnlabeledFolderDataset(name_or_path, transform, corrupt_policy)
        return ImageFolderDataset(name_or_path, transform, corrupt_policy)
    if os.path.isfile(name_or_path):
        return FileListDataset(name_or_path, root or None, transform, corrupt_policy)
    if os.sep in name_or_path or name_or_path.startswith("."):
        raise FileNotFoundError(f"Dataset directory or file list not found: {os.path.abspath(name_or_path)} "
                                f"(expected a folder of images, an ImageFolder root/<class>/<image> or a "
                                f"text file of '<path> [<label>]' lines).")
    try:
        DATASET_REGISTRY.get(name_or_path)
    except KeyError as e:  # neither a name nor a directory: say both
        raise KeyError(f"{e.args[0]}; '{name_or_path}' is not an existing directory or file either "
                       f"({os.path.abspath(name_or_path)}).") from None
    raise AssertionError("unreachable")
