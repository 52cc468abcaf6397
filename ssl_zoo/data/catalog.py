"""More datasets: file lists with labels, STL-10, Imagenette (registered in ``DATASET_REGISTRY``).

* :class:`FileListDataset` -- a text file of ``<path> [<label>]`` lines, paths relative to a
  root (file-backed, same corrupt-file policies as ImageFolder). ``build_dataset`` takes
  the path of such a ``.txt`` file directly.
* STL-10 (Coates et al. 2011), 96 px, in memory: ``stl10_train`` (5,000 labelled),
  ``stl10_test`` (8,000), ``stl10_unlabeled`` (100,000, targets -1) and
  ``stl10_train_unlabeled`` (both, the usual SSL pretraining set). Read from the official
  binary archive ``root/stl10_binary/*.bin`` (the layout torchvision's ``STL10`` reads; read
  here directly because torchvision insists on the archive's MD5 sums, which a partial or
  converted copy fails) or from an ImageFolder copy ``root/stl10/{train,test,unlabeled}``.
* Imagenette (fast.ai, 10 easy ImageNet classes): ImageFolder ``root/imagenette2*/{train,val}``;
  ``imagenette_*`` takes the first of imagenette2, imagenette2-320, imagenette2-160 found,
  ``imagenette320_*`` / ``imagenette160_*`` ask for one size.
"""
from __future__ import annotations

import os
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch

from ssl_zoo.data.datasets import (_ROOT_HINT, DATASET_REGISTRY, FileImageDataset, ImageFolderDataset,
                                   InMemoryImageDataset, _register_split_names, _require_dir)

__all__ = ["FileListDataset", "read_file_list", "read_stl10_binary", "STL10_CLASSES", "STL10_SPLITS"]


# ---------------------------------------------------------------------------- file lists
def read_file_list(list_file: str) -> Tuple[List[Tuple[str, int]], List[str]]:
    """Parse ``<path> [<label>]`` lines (blank lines and ``#`` comments skipped).

    The label is the last whitespace-separated token, so paths may contain spaces when a
    label is given. Labels are all integers (class ids, ``classes = ["0", ..., str(max)]``)
    or all names (ids by sorted name, as ImageFolder); a line without a label is unlabeled
    (target -1), which only an unlabeled list may do.

    Returns:
        (samples: list of (path as written, target), classes).

    Raises:
        ValueError: naming ``file:line`` for a malformed or inconsistent line.
    """
    rows: List[Tuple[str, Optional[str], int]] = []
    with open(list_file, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.rsplit(None, 1)
            rows.append((parts[0], parts[1] if len(parts) == 2 else None, n))
    if not rows:
        raise ValueError(f"{list_file}: no samples")
    labelled = [r for r in rows if r[1] is not None]
    if labelled and len(labelled) != len(rows):
        n = next(r[2] for r in rows if r[1] is None)
        raise ValueError(f"{list_file}:{n}: line without a label in a labelled list (expected '<path> <label>')")
    if not labelled:
        return [(p, -1) for p, _, _ in rows], []
    is_int = [lab.lstrip("-").isdigit() for _, lab, _ in rows]
    if all(is_int):
        ids = [int(lab) for _, lab, _ in rows]
        bad = next((r for r, i in zip(rows, ids) if i < 0), None)
        if bad:
            raise ValueError(f"{list_file}:{bad[2]}: negative label {bad[1]}")
        return [(p, i) for (p, _, _), i in zip(rows, ids)], [str(c) for c in range(max(ids) + 1)]
    if any(is_int):
        n = rows[is_int.index(not is_int[0])][2]  # first line of the other kind
        raise ValueError(f"{list_file}:{n}: mixes integer labels and class names")
    classes = sorted({lab for _, lab, _ in rows})
    cls_id = {c: i for i, c in enumerate(classes)}
    return [(p, cls_id[lab]) for p, lab, _ in rows], classes


class FileListDataset(FileImageDataset):
    """Images listed in a text file of ``<path> [<label>]`` lines (see :func:`read_file_list`).

    Args:
        list_file: the text file.
        root: folder the listed paths are relative to (absolute paths are kept); default:
            the list file's folder.
        transform: callable applied to the RGB PIL image.
        corrupt_policy: "fail" or "skip" (see :class:`FileImageDataset`); a listed file that
            does not exist counts as unreadable.
        num_check_threads: threads for the "skip" scan.

    ``dataset[i] -> (transform(PIL image), target)``; target -1 for an unlabeled list.
    """

    def __init__(self, list_file: str, root: Optional[str] = None, transform: Optional[Callable] = None,
                 corrupt_policy: str = "fail", num_check_threads: Optional[int] = None) -> None:
        if not os.path.isfile(list_file):
            raise FileNotFoundError(f"File list not found: {os.path.abspath(list_file)}")
        self.list_file = os.path.abspath(list_file)
        self.root = os.path.abspath(root) if root else os.path.dirname(self.list_file)
        samples, self.classes = read_file_list(list_file)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self._set_samples([(os.path.join(self.root, p), t) for p, t in samples])
        self.transform = transform
        self._apply_corrupt_policy(corrupt_policy, num_check_threads)

    def __repr__(self) -> str:
        return f"FileListDataset({self.list_file}, root={self.root}, n={len(self)}, classes={len(self.classes)})"


# ---------------------------------------------------------------------------- STL-10
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
        raise FileNotFoundError(f"STL-10: {path} not found ({_ROOT_HINT}).")
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
        from ssl_zoo.data.builtin import load_image_folder_in_memory

        ds = load_image_folder_in_memory(copy, transform=transform, corrupt_policy=policy)
        if split == "unlabeled":  # sub-folders of an unlabeled copy are not classes
            ds.targets = torch.full_like(ds.targets, -1)
            ds.classes = list(STL10_CLASSES)
        return ds
    raise FileNotFoundError(f"STL-10: neither {binary} (official binary archive, extracted) nor {copy} "
                            f"(ImageFolder copy) exists; {_ROOT_HINT}.")


def _stl10(root: str, splits: Tuple[str, ...], transform, policy) -> InMemoryImageDataset:
    """One split, or several concatenated in order (train + unlabeled: targets -1 for the latter)."""
    parts = [_stl10_split(root, s, None, policy) for s in splits]
    if len(parts) == 1:
        parts[0].transform = transform
        return parts[0]
    ds = InMemoryImageDataset(torch.cat([p.images for p in parts]), torch.cat([p.targets for p in parts]),
                              parts[0].classes, transform)
    ds.corrupt_files = [f for p in parts for f in p.corrupt_files]
    return ds


_register_split_names("stl10", lambda r, t, tr, p: _stl10(r, ("train",) if t else ("test",), tr, p))
DATASET_REGISTRY.register(lambda r, t, tr, p: _stl10(r, ("unlabeled",), tr, p), name="stl10_unlabeled")
DATASET_REGISTRY.register(lambda r, t, tr, p: _stl10(r, ("train", "unlabeled"), tr, p), name="stl10_train_unlabeled")


# ---------------------------------------------------------------------------- Imagenette
_IMAGENETTE = {"": ("imagenette2", "imagenette2-320", "imagenette2-160"),
               "320": ("imagenette2-320",), "160": ("imagenette2-160",)}


def _imagenette(root: str, train: bool, transform, policy, variant: str = "") -> ImageFolderDataset:
    split = "train" if train else "val"
    tried = [os.path.join(root, folder, split) for folder in _IMAGENETTE[variant]]
    for path in tried:
        if os.path.isdir(path):
            return ImageFolderDataset(path, transform, policy)
    _require_dir(tried[0], f"Imagenette (ImageFolder layout; tried {', '.join(tried)})")
    raise AssertionError("unreachable")


for _variant in _IMAGENETTE:
    _register_split_names(f"imagenette{_variant}", lambda r, t, tr, p, v=_variant: _imagenette(r, t, tr, p, v),
                          test_suffix="val")
