"""The common output of the classification readers: image ids per official split, with labels.

Every reader (``food101.py``, ``sun397.py``, ...) turns one dataset's official on-disk release
into :class:`SplitRecords`: for each split the release defines ("train", "val", "test", or
"all" for Caltech-101, which has none), a list of ``(image id, target)``. An image id is the
path relative to the dataset root (or ``"<split>/<index>"`` for in-memory archives such as
CIFAR's python pickles), so split files written from it are portable between machines.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from PIL import Image

__all__ = ["SplitRecords", "Target", "require", "open_rgb", "read_lines", "labelled"]

# An int class index, or for multi-label sets an int8 ``[C]`` tensor: 1 present, -1 absent,
# 0 ignored (VOC: only "difficult" objects of that class in the image).
Target = Union[int, torch.Tensor]


def open_rgb(path: str) -> Image.Image:
    """Decode an image as RGB (Caltech-101 and SUN397 hold grayscale / CMYK files)."""
    with Image.open(path) as img:
        return img.convert("RGB")


@dataclass
class SplitRecords:
    """One dataset release as read from disk.

    Attributes:
        name: dataset name (for messages).
        root: the dataset directory; image ids are relative to it.
        classes: class names, index = label.
        splits: split name -> ``[(image id, target), ...]``.
        multilabel: targets are ``[C]`` tensors (VOC2007) instead of ints.
        missing: listed images absent from disk (Birdsnap's dead Flickr links), left out of ``splits``.
        loader: image id -> RGB PIL image (default: open ``root/id``).
    """

    name: str
    root: str
    classes: List[str]
    splits: Dict[str, List[Tuple[str, Target]]]
    multilabel: bool = False
    missing: List[str] = field(default_factory=list)
    loader: Optional[Callable[[str], Image.Image]] = None

    def load(self, image_id: str) -> Image.Image:
        """The RGB image of ``image_id``."""
        return self.loader(image_id) if self.loader is not None else open_rgb(os.path.join(self.root, image_id))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def sizes(self) -> Dict[str, int]:
        return {k: len(v) for k, v in self.splits.items()}


def require(path: str, dataset: str, hint: str) -> str:
    """``path`` if it exists, else one ``FileNotFoundError`` saying what to put where."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{dataset}: {path} not found; {hint}")
    return path


def read_lines(path: str, skip_header: bool = False) -> List[str]:
    """Non-empty stripped lines of a text file (optionally without its first line)."""
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\n\r") for line in f]
    if skip_header:
        lines = lines[1:]
    return [line.strip() for line in lines if line.strip()]


def labelled(ids: Sequence[str], labels: Sequence[Target]) -> List[Tuple[str, Target]]:
    return list(zip(ids, labels))
