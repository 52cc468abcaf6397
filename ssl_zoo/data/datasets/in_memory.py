"""In-memory decoding of small image sets (a JPEG/PNG folder, the shipped CIFAR-10 subset), with an .npz cache.

``ssl_zoo/data/builtin/cifar10_5k.zip`` (built by ``tools/make_builtin_dataset.py``) holds
5,000 train + 1,000 test CIFAR-10 images (Krizhevsky 2009), 500 / 100 per class, as the
original JPEG bytes of the JPEG copy in ``train/<class>/*.jpg`` and ``test/<class>/*.jpg``.
It lets tests, tutorials and ``*_instant_test`` configs run with no download.

Decoding 6,000 JPEGs takes about a second; the decoded uint8 arrays are cached under
``$SSL_ZOO_CACHE`` (default ``~/.cache/ssl_zoo``) keyed by the content hash of the source,
so later loads are a single ``np.load``. An unwritable cache only costs the decode.
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings
import zipfile
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from ssl_zoo.data.datasets.base import (CORRUPT_POLICIES, InMemoryImageDataset, UnreadableImageError, require_dir,
                                        threaded_map)
from ssl_zoo.utils.file_io import cache_dir, file_digest

__all__ = ["BUILTIN_ZIP", "IMAGE_EXTENSIONS", "decode_images", "load_builtin_cifar10", "load_image_folder_in_memory"]

# ssl_zoo/data/builtin/cifar10_5k.zip (package data)
BUILTIN_ZIP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "builtin", "cifar10_5k.zip")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff")


def _decode_one(blob: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(blob)) as img:
        return np.asarray(img.convert("RGB"))


def decode_images(blobs: Sequence[bytes], names: Sequence[str], corrupt_policy: str = "fail",
                  threads: Optional[int] = None) -> Tuple[torch.Tensor, List[int], List[str]]:
    """Decode encoded images into one tensor.

    Args:
        blobs: encoded image bytes; ``names``: their paths, for error messages.
        corrupt_policy: "fail" raises :class:`UnreadableImageError` naming the file; "skip" drops it.

    Returns:
        (uint8 [M, 3, H, W], kept positions (M of them), names of the skipped files).
    """
    def safe(blob_name):
        try:
            return _decode_one(blob_name[0])
        except Exception as e:  # noqa: BLE001
            return f"{type(e).__name__}: {e}"

    arrays = threaded_map(safe, list(zip(blobs, names)), threads, chunk=256)
    kept, bad = [], []
    for i, a in enumerate(arrays):
        if isinstance(a, str):
            if corrupt_policy == "fail":
                raise UnreadableImageError(f"Cannot read image {names[i]}: {a} "
                                           f"(set DATASETS.CORRUPT_POLICY 'skip' to skip unreadable files)")
            bad.append(names[i])
        else:
            kept.append(i)
    if not kept:
        raise RuntimeError(f"No readable image among {len(names)} files (first: {names[:1]})")
    shapes = {arrays[i].shape for i in kept}
    if len(shapes) != 1:
        raise ValueError(f"In-memory datasets need images of one size; found {sorted(shapes)[:5]}")
    images = torch.from_numpy(np.stack([arrays[i] for i in kept])).permute(0, 3, 1, 2).contiguous()
    return images, kept, bad


def _cached(key: str, build: Callable[[], Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """Load ``<cache_dir>/<key>.npz`` or build, save (atomically) and return it."""
    path = os.path.join(cache_dir(), key + ".npz")
    if os.path.isfile(path):
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except Exception as e:  # noqa: BLE001 - a damaged cache is rebuilt, never fatal
            warnings.warn(f"Ignoring unreadable cache {path}: {e}")
    arrays = build()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)  # atomic: concurrent ranks never read a half-written file
    except OSError as e:
        warnings.warn(f"Could not write dataset cache {path} ({e}); set SSL_ZOO_CACHE to a writable folder.")
    return arrays


def _split_arrays(entries: List[Tuple[str, str, bytes]], prefix: str,
                  corrupt_policy: str = "fail") -> Dict[str, np.ndarray]:
    """entries: (class name, file name, bytes) -> {prefix_images, prefix_targets, prefix_classes, prefix_corrupt}."""
    entries = sorted(entries, key=lambda e: (e[0], e[1]))
    classes = sorted({e[0] for e in entries})  # class ids by sorted class name, as ImageFolder
    cls_id = {c: i for i, c in enumerate(classes)}
    images, kept, bad = decode_images([e[2] for e in entries], [e[1] for e in entries], corrupt_policy)
    targets = np.array([cls_id[entries[i][0]] for i in kept], dtype=np.int64)
    return {f"{prefix}images": images.numpy(), f"{prefix}targets": targets,
            f"{prefix}classes": np.array(classes), f"{prefix}corrupt": np.array(bad, dtype=str)}


def _to_dataset(arrays: Dict[str, np.ndarray], prefix: str, transform) -> InMemoryImageDataset:
    ds = InMemoryImageDataset(torch.from_numpy(arrays[f"{prefix}images"]), torch.from_numpy(arrays[f"{prefix}targets"]),
                              [str(c) for c in arrays[f"{prefix}classes"]], transform)
    ds.corrupt_files = [str(p) for p in arrays.get(f"{prefix}corrupt", [])]
    if ds.corrupt_files:
        warnings.warn(f"Skipped {len(ds.corrupt_files)} unreadable image(s): {ds.corrupt_files[:20]}")
    return ds


def load_builtin_cifar10(train: bool = True, transform: Optional[Callable] = None,
                         zip_path: str = BUILTIN_ZIP) -> InMemoryImageDataset:
    """The shipped CIFAR-10 subset: 5,000 train / 1,000 test images, uint8 [N, 3, 32, 32], 10 classes."""
    if not os.path.isfile(zip_path):
        raise FileNotFoundError(f"Built-in dataset archive not found: {zip_path} "
                                f"(regenerate it with tools/make_builtin_dataset.py).")

    def build() -> Dict[str, np.ndarray]:
        out: Dict[str, np.ndarray] = {}
        with zipfile.ZipFile(zip_path) as zf:
            for split in ("train", "test"):
                entries = []
                for name in zf.namelist():
                    parts = name.split("/")
                    if len(parts) == 3 and parts[0] == split and parts[2].lower().endswith(IMAGE_EXTENSIONS):
                        entries.append((parts[1], f"{zip_path}:{name}", zf.read(name)))
                out.update(_split_arrays(entries, f"{split}_"))
        return out

    arrays = _cached(f"builtin_cifar10_5k-{file_digest(zip_path)[:16]}", build)
    return _to_dataset(arrays, "train_" if train else "test_", transform)


def load_image_folder_in_memory(root: str, transform: Optional[Callable] = None,
                                corrupt_policy: str = "fail") -> InMemoryImageDataset:
    """Decode a small ImageFolder (``root/<class>/<image>``, all images one size) into memory.

    The cache key hashes every file's relative path, size and mtime, so editing the folder
    invalidates it. Unreadable files follow ``corrupt_policy`` ("fail" / "skip").
    """
    if corrupt_policy not in CORRUPT_POLICIES:
        raise ValueError(f"corrupt_policy must be one of {CORRUPT_POLICIES}, got {corrupt_policy!r}")
    root = os.path.abspath(require_dir(root, "ImageFolder"))
    files = []
    # Links are followed, but each real directory is walked once (a symlink loop used to repeat a
    # class ~40x) and each real file counted once; an empty class folder is an error, because
    # dropping it would shift the index of every later class (torchvision's ImageFolder refuses too).
    seen_dirs, seen_files, repeats = set(), set(), []
    for cls in sorted(d.name for d in os.scandir(root) if d.is_dir()):
        before = len(files)
        for dirpath, dirnames, names in os.walk(os.path.join(root, cls), followlinks=True):
            real_dir = os.path.realpath(dirpath)
            if real_dir in seen_dirs:
                dirnames[:] = []
                repeats.append(dirpath)
                continue
            seen_dirs.add(real_dir)
            dirnames.sort()
            for n in sorted(names):
                path = os.path.join(dirpath, n)
                if n.lower().endswith(IMAGE_EXTENSIONS):
                    if os.path.realpath(path) in seen_files:
                        repeats.append(path)
                        continue
                    seen_files.add(os.path.realpath(path))
                    files.append((cls, path))
        if len(files) == before:
            raise FileNotFoundError(f"class folder '{os.path.join(root, cls)}' holds no images: it would shift the "
                                    f"index of every later class. Add images or remove the folder.")
    if repeats:
        warnings.warn(f"{root}: {len(repeats)} linked director(ies) / file(s) reached twice were counted once "
                      f"(e.g. {repeats[:3]})")
    if not files:
        raise FileNotFoundError(f"No images found in class folders under {root}")
    h = hashlib.sha256(f"{root}|{corrupt_policy}".encode())
    for cls, p in files:
        st = os.stat(p)
        h.update(f"{os.path.relpath(p, root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())

    def build() -> Dict[str, np.ndarray]:
        entries = []
        for cls, p in files:
            with open(p, "rb") as f:
                entries.append((cls, p, f.read()))
        return _split_arrays(entries, "", corrupt_policy)

    arrays = _cached(f"folder-{os.path.basename(root)}-{h.hexdigest()[:16]}", build)
    return _to_dataset(arrays, "", transform)
