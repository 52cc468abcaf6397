"""PASCAL VOC in its official on-disk layout (VOCdevkit/VOC2007, VOCdevkit/VOC2012).

One year directory holds::

    Annotations/<id>.xml              one XML per image (size, objects, boxes, difficult flags)
    JPEGImages/<id>.jpg               the images
    ImageSets/Main/<split>.txt        image ids of a split (train, val, trainval, test)
    ImageSets/Segmentation/<split>.txt, SegmentationClass/<id>.png   (segmentation, read elsewhere)

Coordinates: the XML stores 1-based inclusive pixel indices (the devkit's convention).
:func:`parse_voc_xml` returns them exactly as written; :class:`VOCDetectionDataset` converts to
0-based continuous ``x1y1x2y2`` boxes the way detectron2's ``datasets/pascal_voc.py`` does
(``xmin - 1, ymin - 1, xmax, ymax``), so a box covering pixels 1..10 becomes [0, 10).

Sizes of the official splits (PROTOCOLS.md s.6: VOC07 trainval 5,011, test 4,952, VOC12 trainval
11,540) are checked; a mismatch is reported as a warning (a user may run on a partial copy on
purpose), or raised with ``strict_size=True``.

A ``classes.txt`` (one class name per line) in the year directory overrides the 20 VOC classes:
datasets in VOC's layout with other classes (``tools/make_pasted_voc.py``) ship one, and
:func:`load_class_names` reads it.
"""
from __future__ import annotations

import os
import warnings
import xml.etree.ElementTree as ET
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from PIL import Image
from torch.utils.data import Dataset

__all__ = [
    "VOC_CLASSES",
    "OFFICIAL_SPLIT_SIZES",
    "parse_voc_xml",
    "read_image_set",
    "load_class_names",
    "check_split_size",
    "VOCDetectionDataset",
]

# The devkit's class order (VOCdevkit/VOCcode/VOCinit.m); label i+1 in detection, i in classification.
VOC_CLASSES: Tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)

# (year directory name, image set) -> number of images in the official release.
OFFICIAL_SPLIT_SIZES: Dict[Tuple[str, str], int] = {
    ("VOC2007", "train"): 2501, ("VOC2007", "val"): 2510, ("VOC2007", "trainval"): 5011,
    ("VOC2007", "test"): 4952,
    ("VOC2012", "train"): 5717, ("VOC2012", "val"): 5823, ("VOC2012", "trainval"): 11540,
}

CLASSES_FILE = "classes.txt"


def _text(node: ET.Element, tag: str, path: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None:
        raise ValueError(f"{path}: missing <{tag}> in <{node.tag}>")
    return child.text.strip()


def _number(text: str, tag: str, path: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{path}: <{tag}> is not a number: {text!r}") from None


def parse_voc_xml(path: str) -> dict:
    """Parse one VOC annotation file.

    Args:
        path: ``Annotations/<id>.xml``.

    Returns:
        ``{"filename": str, "width": int, "height": int, "objects": [{"name": str,
        "bbox": (xmin, ymin, xmax, ymax) as written (1-based inclusive; floats, since a few
        VOC2012 files hold fractional values), "difficult": bool, "truncated": bool}, ...]}``.
        A missing ``<difficult>`` tag means 0, as in the devkit.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: malformed XML or a missing / non-numeric field (the message names the file).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"VOC annotation not found: {path}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f"{path}: not valid XML ({e})") from None
    size = root.find("size")
    if size is None:
        raise ValueError(f"{path}: missing <size>")
    objects = []
    for obj in root.findall("object"):
        box = obj.find("bndbox")
        if box is None:
            raise ValueError(f"{path}: <object> without <bndbox>")
        bbox = tuple(_number(_text(box, t, path), t, path) for t in ("xmin", "ymin", "xmax", "ymax"))
        diff, trunc = obj.find("difficult"), obj.find("truncated")
        objects.append({
            "name": _text(obj, "name", path),
            "bbox": bbox,
            "difficult": bool(int(diff.text)) if diff is not None and diff.text else False,
            "truncated": bool(int(trunc.text)) if trunc is not None and trunc.text else False,
        })
    return {
        "filename": _text(root, "filename", path),
        "width": int(_number(_text(size, "width", path), "width", path)),
        "height": int(_number(_text(size, "height", path), "height", path)),
        "objects": objects,
    }


def read_image_set(root: str, name: str, task: str = "Main") -> List[str]:
    """Image ids listed in ``<root>/ImageSets/<task>/<name>.txt`` (first column; blank lines skipped).

    Args:
        root: a VOC year directory (``.../VOCdevkit/VOC2007``).
        name: split name, e.g. "trainval", "test".
        task: "Main" (detection / classification) or "Segmentation".
    """
    path = os.path.join(root, "ImageSets", task, f"{name}.txt")
    if not os.path.isfile(path):
        available = sorted(f[:-4] for f in os.listdir(os.path.dirname(path))) \
            if os.path.isdir(os.path.dirname(path)) else []
        raise FileNotFoundError(f"VOC image set not found: {path} (available: {available or 'none'}; "
                                f"root must be a VOC year directory such as VOCdevkit/VOC2007)")
    with open(path) as f:
        return [line.split()[0] for line in f if line.strip()]


def load_class_names(root: str) -> List[str]:
    """``<root>/classes.txt`` (one name per line) if present, else the 20 VOC classes."""
    path = os.path.join(root, CLASSES_FILE)
    if not os.path.isfile(path):
        return list(VOC_CLASSES)
    with open(path) as f:
        names = [line.strip() for line in f if line.strip()]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"{path}: class names must be non-empty and unique, got {names}")
    return names


def check_split_size(root: str, image_set: str, n: int, strict: bool = False) -> Optional[str]:
    """Compare ``n`` with the official size of ``(basename(root), image_set)``.

    Returns the mismatch message (also warned, or raised as ``ValueError`` when ``strict``), or
    None when the sizes agree or the directory is not an official year (e.g. a pasted set).
    """
    expected = OFFICIAL_SPLIT_SIZES.get((os.path.basename(os.path.normpath(root)), image_set))
    if expected is None or expected == n:
        return None
    msg = (f"{root}: ImageSets/Main/{image_set}.txt lists {n} images, the official release has "
           f"{expected}; results are not comparable with published numbers")
    if strict:
        raise ValueError(msg)
    warnings.warn(msg, stacklevel=3)
    return msg


class VOCDetectionDataset(Dataset):
    """Detection samples of one VOC year directory and image set.

    Args:
        root: VOC year directory (holding Annotations/, JPEGImages/, ImageSets/Main/).
        image_set: split name ("trainval", "test", ...).
        class_names: label ``i + 1`` is ``class_names[i]`` (0 is background, torchvision's
            convention); default: :func:`load_class_names` (``classes.txt`` or the 20 VOC classes).
        transforms: optional ``f(image, target) -> (image, target)``.
        strict_size: raise instead of warn when an official split has the wrong size.

    ``dataset[i]`` returns ``(PIL RGB image, target)`` (or what ``transforms`` makes of them)
    with target::

        boxes:     float32 [N, 4] x1y1x2y2, 0-based continuous pixels (xmin-1, ymin-1, xmax, ymax)
        labels:    int64 [N] in 1..len(class_names)
        difficult: bool [N] (kept: training uses every box as detectron2 does; the evaluator
                   ignores difficult ones)
        image_id:  str, size: (height, width) from the XML

    Attributes:
        ids: image ids in split order; ``size_mismatch``: the message of :func:`check_split_size`.
    """

    def __init__(self, root: str, image_set: str, class_names: Optional[Sequence[str]] = None,
                 transforms: Optional[Callable] = None, strict_size: bool = False) -> None:
        if not os.path.isdir(root):
            raise FileNotFoundError(f"VOC root not found: {root} (expected a year directory such as "
                                    f"VOCdevkit/VOC2007 holding Annotations/, JPEGImages/, ImageSets/)")
        self.root, self.image_set, self.transforms = root, image_set, transforms
        self.class_names = list(class_names) if class_names is not None else load_class_names(root)
        self._index = {n: i for i, n in enumerate(self.class_names)}
        self.ids = read_image_set(root, image_set)
        self.size_mismatch = check_split_size(root, image_set, len(self.ids), strict_size)

    def __len__(self) -> int:
        return len(self.ids)

    def annotation(self, index: int) -> dict:
        """Parsed XML of sample ``index`` (see :func:`parse_voc_xml`)."""
        return parse_voc_xml(os.path.join(self.root, "Annotations", f"{self.ids[index]}.xml"))

    def target(self, index: int) -> dict:
        """The target dict of sample ``index`` without reading the image."""
        ann, path = self.annotation(index), os.path.join(self.root, "Annotations", f"{self.ids[index]}.xml")
        labels = []
        for obj in ann["objects"]:
            if obj["name"] not in self._index:
                raise KeyError(f"{path}: class {obj['name']!r} is not one of {self.class_names}")
            labels.append(self._index[obj["name"]] + 1)
        boxes = torch.tensor([o["bbox"] for o in ann["objects"]], dtype=torch.float32).reshape(-1, 4)
        boxes[:, :2] -= 1.0  # 1-based inclusive -> 0-based continuous (detectron2's pascal_voc.py)
        return {
            "boxes": boxes,
            "labels": torch.tensor(labels, dtype=torch.int64),
            "difficult": torch.tensor([o["difficult"] for o in ann["objects"]], dtype=torch.bool),
            "image_id": self.ids[index],
            "size": (ann["height"], ann["width"]),
        }

    def image_path(self, index: int) -> str:
        return os.path.join(self.root, "JPEGImages", f"{self.ids[index]}.jpg")

    def __getitem__(self, index: int):
        target = self.target(index)
        path = self.image_path(index)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"VOC image not found: {path} (listed in ImageSets/Main/{self.image_set}.txt)")
        with Image.open(path) as img:
            image = img.convert("RGB")
        if image.size != (target["size"][1], target["size"][0]):
            raise ValueError(f"{path}: image is {image.size[0]}x{image.size[1]} but its annotation says "
                             f"{target['size'][1]}x{target['size'][0]}")
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def __repr__(self) -> str:
        return (f"VOCDetectionDataset(root={self.root!r}, image_set={self.image_set!r}, n={len(self)}, "
                f"classes={len(self.class_names)})")
