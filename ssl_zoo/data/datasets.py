"""Datasets: the in-memory image tensor dataset, a file-backed ImageFolder, and the name registry.

Two kinds of dataset come out of :func:`build_dataset`:

* :class:`InMemoryImageDataset` for small sets (CIFAR, the shipped built-in subset): all
  images decoded once into ``images: uint8 [N, 3, H, W]`` + ``targets: int64 [N]``. The
  "batched" training path gathers batches straight from these tensors (no DataLoader).
* :class:`ImageFolderDataset` for large sets (ImageNet, any folder): decoded lazily in
  DataLoader workers, with an explicit policy for unreadable files (shared with the other
  file-backed set, ``catalog.FileListDataset``, through :class:`FileImageDataset`).

More names (file lists, STL-10, Imagenette) are registered in ``catalog.py``; subsets
(``build_dataset(..., subset=SubsetSpec(...))``) are drawn in ``subset.py``.

Names (``DATASET_REGISTRY``) resolve under a root: the explicit ``root`` argument, else
``$SSL_ZOO_DATASETS``, else ``./datasets``. A missing directory raises ``FileNotFoundError``
naming the full path tried and how to point ssl_zoo at the data.
"""
from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets import ImageFolder

from ssl_zoo.utils.registry import Registry

__all__ = [
    "DATASET_REGISTRY",
    "CORRUPT_POLICIES",
    "UnreadableImageError",
    "InMemoryImageDataset",
    "FileImageDataset",
    "ImageFolderDataset",
    "corrupt_summary",
    "build_dataset",
    "resolve_root",
]

DATASET_REGISTRY = Registry("DATASET")
DATASET_REGISTRY.__doc__ = """Named datasets: ``f(root, train, transform, corrupt_policy) -> Dataset``."""

CORRUPT_POLICIES = ("fail", "skip")
_ROOT_HINT = "set DATASETS.ROOT in the config or the SSL_ZOO_DATASETS environment variable"


class UnreadableImageError(RuntimeError):
    """An image file that PIL cannot decode (corrupt policy "fail"); the message names the file."""


def resolve_root(root: Optional[str] = None) -> str:
    """Dataset root: ``root`` if given and non-empty, else ``$SSL_ZOO_DATASETS``, else ``./datasets``."""
    return os.path.abspath(os.path.expanduser(root or os.environ.get("SSL_ZOO_DATASETS") or "./datasets"))


def _require_dir(path: str, what: str) -> str:
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{what}: directory not found: {path} ({_ROOT_HINT}, or pass a path).")
    return path


class InMemoryImageDataset(Dataset):
    """Images held as one uint8 tensor.

    Args:
        images: uint8 [N, 3, H, W] (RGB, channels first).
        targets: int64 [N] class ids (index into ``classes``).
        classes: class names, sorted, ``classes[targets[i]]`` is the name of image i.
        transform: optional callable applied to the PIL image in ``__getitem__``.

    Attributes:
        corrupt_files: source files skipped as unreadable when the set was decoded from files.

    ``dataset[i]`` returns ``(transform(PIL image) or PIL image, int target)``; the batched
    path reads ``.images`` / ``.targets`` directly.
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, classes: Sequence[str],
                 transform: Optional[Callable] = None) -> None:
        images, targets = torch.as_tensor(images), torch.as_tensor(targets, dtype=torch.int64)
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be uint8 [N,3,H,W], got {images.dtype} {tuple(images.shape)}")
        if targets.shape != (images.shape[0],):
            raise ValueError(f"targets must be [N]={images.shape[0]}, got {tuple(targets.shape)}")
        self.images, self.targets, self.classes = images.contiguous(), targets, list(classes)
        self.transform = transform
        self.corrupt_files: List[str] = []  # filled by loaders that decode files (policy "skip")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_size(self) -> Tuple[int, int]:
        """(H, W) of every image."""
        return tuple(self.images.shape[2:])

    def __getitem__(self, index: int):
        img = Image.fromarray(self.images[index].permute(1, 2, 0).numpy(), mode="RGB")
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.targets[index])

    def __repr__(self) -> str:
        return (f"InMemoryImageDataset(n={len(self)}, size={self.image_size}, "
                f"classes={len(self.classes)})")


def threaded_map(fn: Callable, items: Sequence, threads: Optional[int] = None, chunk: int = 1024) -> list:
    """``[fn(x) for x in items]`` on a thread pool (PIL releases the GIL while decoding).

    Work is submitted in chunks: one future per item would cost ~1 GB at ImageNet scale.
    """
    def run(lo: int) -> list:
        return [fn(x) for x in items[lo: lo + chunk]]

    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
        return [r for part in pool.map(run, range(0, len(items), chunk)) for r in part]


def _check_image(path: str) -> Optional[str]:
    """Return None if ``path`` fully decodes, else the error text. JPEGs decode at 1/8 scale
    (``draft``): still reads every entropy-coded byte, so truncation is caught, ~10x faster."""
    try:
        with Image.open(path) as img:
            img.draft("RGB", (1, 1))
            img.load()
        return None
    except Exception as e:  # noqa: BLE001 - any decoder failure means "unreadable"
        return f"{type(e).__name__}: {e}"


class FileImageDataset(Dataset):
    """Base of the file-backed datasets: ``samples`` of (path, target), decoded lazily with a
    policy for unreadable files. Subclasses fill ``root``, ``samples``, ``targets``, ``classes``
    and then call :meth:`_apply_corrupt_policy`.

    Policies: "fail" -> reading an unreadable file raises :class:`UnreadableImageError` naming
    it. "skip" -> every file is test-decoded once at construction (threaded; about a minute
    for ImageNet on 16 cores), unreadable ones are dropped and listed in ``corrupt_files``
    with one warning giving their count and paths; a file that breaks later is replaced by
    the next readable sample (with a warning naming it) so a long run is not lost.
    """

    root: str
    samples: List[Tuple[str, int]]
    targets: List[int]
    classes: List[str]
    transform: Optional[Callable]

    def _apply_corrupt_policy(self, corrupt_policy: str, num_check_threads: Optional[int]) -> None:
        if corrupt_policy not in CORRUPT_POLICIES:
            raise ValueError(f"corrupt_policy must be one of {CORRUPT_POLICIES}, got {corrupt_policy!r}")
        self.corrupt_policy = corrupt_policy
        self.corrupt_files: List[str] = []
        if corrupt_policy == "skip":
            self._drop_unreadable(num_check_threads or os.cpu_count() or 1)

    def __len__(self) -> int:
        return len(self.samples)

    def _set_samples(self, samples: List[Tuple[str, int]]) -> None:
        self.samples = self.imgs = samples
        self.targets = [t for _, t in samples]

    def _drop_unreadable(self, threads: int) -> None:
        paths = [p for p, _ in self.samples]
        errors = threaded_map(_check_image, paths, threads)
        bad = [(p, e) for p, e in zip(paths, errors) if e is not None]
        if bad:
            self.corrupt_files = [p for p, _ in bad]
            self._set_samples([s for s, e in zip(self.samples, errors) if e is None])
            warnings.warn(corrupt_summary(bad, len(paths), self.root), stacklevel=4)
        if not self.samples:
            raise RuntimeError(f"No readable image left under {self.root}")

    def _load(self, path: str) -> Image.Image:
        try:
            with Image.open(path) as img:
                return img.convert("RGB")
        except Exception as e:  # noqa: BLE001
            raise UnreadableImageError(f"Cannot read image {path}: {type(e).__name__}: {e} "
                                       f"(set DATASETS.CORRUPT_POLICY 'skip' to skip unreadable files)") from e

    def __getitem__(self, index: int):
        for k in range(len(self.samples)):
            path, target = self.samples[(index + k) % len(self.samples)]
            try:
                img = self._load(path)
            except UnreadableImageError as e:
                if self.corrupt_policy == "fail":
                    raise
                if path not in self.corrupt_files:  # worker-local record; the warning reaches stderr
                    self.corrupt_files.append(path)
                    warnings.warn(f"{e}; using the next sample instead")
                continue
            if self.transform is not None:
                img = self.transform(img)
            return img, target
        raise RuntimeError(f"No readable image under {self.root}")


def corrupt_summary(bad: Sequence[Tuple[str, str]], total: int, where: str, shown: int = 20) -> str:
    """One report for skipped files: count, total, and the first ``shown`` paths with their errors."""
    lines = "\n  ".join(f"{p} ({e})" for p, e in bad[:shown])
    more = f"\n  ... and {len(bad) - shown} more" if len(bad) > shown else ""
    return f"Skipped {len(bad)} unreadable image(s) of {total} under {where}:\n  {lines}{more}"


class ImageFolderDataset(FileImageDataset, ImageFolder):
    """torchvision ``ImageFolder`` (``root/<class>/<image>``) with a policy for unreadable files.

    Args:
        root: folder with one sub-folder per class (classes sorted by name).
        transform: callable applied to the RGB PIL image.
        corrupt_policy: "fail" or "skip" (see :class:`FileImageDataset`).
        num_check_threads: threads for the "skip" scan (default: CPU count).

    Attributes:
        corrupt_files: paths found unreadable (policy "skip"); empty under "fail".
    """

    def __init__(self, root: str, transform: Optional[Callable] = None, corrupt_policy: str = "fail",
                 num_check_threads: Optional[int] = None) -> None:
        if corrupt_policy not in CORRUPT_POLICIES:
            raise ValueError(f"corrupt_policy must be one of {CORRUPT_POLICIES}, got {corrupt_policy!r}")
        ImageFolder.__init__(self, _require_dir(root, "ImageFolder"), transform=transform)
        # torchvision follows links without remembering them (a symlink loop repeats a class ~40x):
        # count each real file once. Empty class folders already raise in ImageFolder.
        unique, seen = [], set()
        for path, target in self.samples:
            if os.path.realpath(path) not in seen:
                seen.add(os.path.realpath(path))
                unique.append((path, target))
        if len(unique) < len(self.samples):
            warnings.warn(f"{root}: {len(self.samples) - len(unique)} file(s) reached twice through links were "
                          f"counted once")
            self._set_samples(unique)
        self._apply_corrupt_policy(corrupt_policy, num_check_threads)


# ---------------------------------------------------------------------------- registry
def _split_name(train: bool) -> str:
    return "train" if train else "test"


def _cifar(root: str, train: bool, transform, corrupt_policy: str, num_classes: int):
    """Official python archive (root/cifar-10-batches-py, root/cifar-100-python) or an
    ImageFolder copy (root/cifar{10,100}/{train,test}); both become in-memory datasets."""
    from torchvision.datasets import CIFAR10, CIFAR100

    cls, folder = (CIFAR10, "cifar-10-batches-py") if num_classes == 10 else (CIFAR100, "cifar-100-python")
    if os.path.isdir(os.path.join(root, folder)):
        ds = cls(root, train=train, download=False)
        images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2)  # NHWC -> NCHW
        return InMemoryImageDataset(images, torch.tensor(ds.targets), ds.classes, transform)
    copy = os.path.join(root, f"cifar{num_classes}", _split_name(train))
    if os.path.isdir(copy):
        from ssl_zoo.data.builtin import load_image_folder_in_memory

        return load_image_folder_in_memory(copy, transform=transform, corrupt_policy=corrupt_policy)
    raise FileNotFoundError(
        f"CIFAR-{num_classes}: neither {os.path.join(root, folder)} (official python archive, extracted) "
        f"nor {copy} (ImageFolder copy) exists; {_ROOT_HINT}.")


def _register_split_names(base: str, fn: Callable, train_suffix: str = "train", test_suffix: str = "test") -> None:
    """Register ``base`` (split from the ``train`` argument) and ``base_<split>`` (split fixed)."""
    DATASET_REGISTRY.register(fn, name=base)
    DATASET_REGISTRY.register(lambda root, train, transform, policy: fn(root, True, transform, policy),
                              name=f"{base}_{train_suffix}")
    DATASET_REGISTRY.register(lambda root, train, transform, policy: fn(root, False, transform, policy),
                              name=f"{base}_{test_suffix}")


def _builtin_cifar10(root, train, transform, policy):
    from ssl_zoo.data.builtin import load_builtin_cifar10

    return load_builtin_cifar10(train=train, transform=transform)


def _imagenet(root, train, transform, policy):
    path = os.path.join(root, "imagenet", "train" if train else "val")
    return ImageFolderDataset(_require_dir(path, "ImageNet (ImageFolder layout)"), transform, policy)


_register_split_names("builtin_cifar10", _builtin_cifar10)
_register_split_names("cifar10", lambda r, t, tr, p: _cifar(r, t, tr, p, 10))
_register_split_names("cifar100", lambda r, t, tr, p: _cifar(r, t, tr, p, 100))
_register_split_names("imagenet", _imagenet, test_suffix="val")


def build_dataset(name_or_path: str, root: Optional[str] = None, train: bool = True,
                  transform: Optional[Callable] = None, corrupt_policy: str = "fail", subset=None) -> Dataset:
    """Build a dataset by registry name, ImageFolder path or file-list path.

    Args:
        name_or_path: a ``DATASET_REGISTRY`` name (``builtin_cifar10_train``, ``cifar10_test``,
            ``cifar100_train``, ``imagenet_val``, ``stl10_unlabeled``, ``imagenette_val``, ...;
            a bare ``cifar10`` takes the split from ``train``), the path of an existing
            ImageFolder directory, or the path of a text file of ``<path> <label>`` lines
            (:class:`~ssl_zoo.data.catalog.FileListDataset`; paths relative to an explicit
            ``root``, else to the list's folder).
        root: dataset root for names (see :func:`resolve_root`).
        train: split for bare names; ignored for paths and names with a split suffix.
        transform: applied to each PIL image in ``__getitem__``.
        corrupt_policy: "fail" or "skip" (see :class:`FileImageDataset`).
        subset: optional :class:`~ssl_zoo.data.subset.SubsetSpec`: keep a class-balanced,
            seeded fraction or number of images per class (same kind of dataset, with
            ``subset_indices`` into the full set).

    Returns:
        :class:`InMemoryImageDataset` (built-in, CIFAR, STL-10), :class:`ImageFolderDataset`
        or :class:`~ssl_zoo.data.catalog.FileListDataset`.

    Raises:
        FileNotFoundError: the data directory is missing (the message names the full path).
        KeyError: neither a known name nor an existing directory or file.
    """
    from ssl_zoo.data.subset import apply_subset

    return apply_subset(_build_full_dataset(name_or_path, root, train, transform, corrupt_policy), subset)


def _build_full_dataset(name_or_path: str, root: Optional[str], train: bool, transform: Optional[Callable],
                        corrupt_policy: str) -> Dataset:
    if corrupt_policy not in CORRUPT_POLICIES:
        raise ValueError(f"corrupt_policy must be one of {CORRUPT_POLICIES}, got {corrupt_policy!r}")
    if name_or_path in DATASET_REGISTRY:
        return DATASET_REGISTRY.get(name_or_path)(resolve_root(root), train, transform, corrupt_policy)
    if os.path.isdir(name_or_path):
        return ImageFolderDataset(name_or_path, transform, corrupt_policy)
    if os.path.isfile(name_or_path):
        from ssl_zoo.data.catalog import FileListDataset

        return FileListDataset(name_or_path, root or None, transform, corrupt_policy)
    if os.sep in name_or_path or name_or_path.startswith("."):
        raise FileNotFoundError(f"Dataset directory or file list not found: {os.path.abspath(name_or_path)} "
                                f"(expected an ImageFolder root/<class>/<image> or a text file of "
                                f"'<path> <label>' lines).")
    try:
        DATASET_REGISTRY.get(name_or_path)
    except KeyError as e:  # neither a name nor a directory: say both
        raise KeyError(f"{e.args[0]}; '{name_or_path}' is not an existing directory or file either "
                       f"({os.path.abspath(name_or_path)}).") from None
    raise AssertionError("unreachable")


# Registers file lists, STL-10 and Imagenette (kept in their own module for size).
from ssl_zoo.data import catalog as _catalog  # noqa: E402,F401  pylint: disable=wrong-import-position
