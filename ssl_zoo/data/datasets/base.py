"""Dataset base classes: images held in memory as one tensor, and file-backed images decoded lazily.

* :class:`InMemoryImageDataset` for small sets (CIFAR, the shipped built-in subset): all
  images decoded once into ``images: uint8 [N, 3, H, W]`` + ``targets: int64 [N]``. The
  "batched" training path gathers batches straight from these tensors (no DataLoader).
* :class:`FileImageDataset` / :class:`ImageFolderDataset` for large sets (ImageNet, any
  folder): decoded lazily in DataLoader workers, with an explicit policy for unreadable files.

Both keep their kind under :meth:`subset` (the batched path needs ``.images``; file sets
stay file-backed), so subsets, validation hold-outs and few-label splits are datasets too.
"""
from __future__ import annotations

import copy
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets import ImageFolder

__all__ = [
    "CORRUPT_POLICIES",
    "ROOT_HINT",
    "UnreadableImageError",
    "InMemoryImageDataset",
    "FileImageDataset",
    "ImageFolderDataset",
    "corrupt_summary",
    "require_dir",
    "threaded_map",
]

CORRUPT_POLICIES = ("fail", "skip")
ROOT_HINT = "set DATASETS.ROOT in the config or the SSL_ZOO_DATASETS environment variable"


class UnreadableImageError(RuntimeError):
    """An image file that PIL cannot decode (corrupt policy "fail"); the message names the file."""


def require_dir(path: str, what: str) -> str:
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{what}: directory not found: {path} ({ROOT_HINT}, or pass a path).")
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

    def subset(self, indices: torch.Tensor) -> "InMemoryImageDataset":
        """The images ``indices`` (int64 ``[M]``), still in memory, with ``subset_indices`` into this set."""
        indices = torch.as_tensor(indices, dtype=torch.int64)
        out = InMemoryImageDataset(self.images.index_select(0, indices), self.targets.index_select(0, indices),
                                   self.classes, self.transform)
        out.corrupt_files = list(self.corrupt_files)
        out.subset_indices = indices
        return out

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

    def subset(self, indices: torch.Tensor) -> "FileImageDataset":
        """A shallow copy holding the samples ``indices`` (int64 ``[M]``), with ``subset_indices``."""
        indices = torch.as_tensor(indices, dtype=torch.int64)
        out = copy.copy(self)
        out._set_samples([self.samples[i] for i in indices.tolist()])
        out.subset_indices = indices
        return out

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
        ImageFolder.__init__(self, require_dir(root, "ImageFolder"), transform=transform)
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
