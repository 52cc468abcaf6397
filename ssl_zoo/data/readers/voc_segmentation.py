"""PASCAL VOC2012 semantic segmentation and its SBD augmentation ("train_aug"), as released.

On-disk formats read here (PROTOCOLS.md s.6; evaluation-anchors s.2.4):

* VOC2012 (``VOCdevkit/VOC2012``; lists read with :func:`ssl_zoo.data.readers.voc.read_image_set`):
  ``JPEGImages/<id>.jpg``, ``SegmentationClass/<id>.png``
  (8-bit *palette* PNGs whose pixel values are class indices 0-20 and 255 on object
  boundaries / "void"; the palette colours are only for display), and the lists
  ``ImageSets/Segmentation/{train,val}.txt`` (1,464 / 1,449 ids).
* SBD, Hariharan et al. 2011 (``benchmark_RELEASE/dataset``): ``img/<id>.jpg``,
  ``cls/<id>.mat`` (MATLAB v5 files holding a 1x1 struct ``GTcls`` whose field
  ``Segmentation`` is the HxW uint8 class map, no void label) and ``{train,val}.txt``
  (8,498 / 2,857 ids).

``train_aug`` (the 10,582 images every VOC segmentation benchmark trains on) is SBD
train + SBD val + VOC2012 train, minus VOC2012 val. An image with a VOC2012 PNG uses it
(finer, with void boundaries), the others their SBD ``.mat`` (as mmsegmentation's
``SegmentationClass`` + ``SegmentationClassAug`` pair does).
"""
from __future__ import annotations

import logging
import os
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import scipy.io
from PIL import Image
from torch.utils.data import Dataset

from ssl_zoo.data.readers.voc import load_class_names, read_image_set
from ssl_zoo.utils.file_io import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["VOC_CLASSES", "IGNORE_LABEL", "OFFICIAL_SIZES", "SegSample", "voc_palette", "find_voc2012", "find_sbd",
           "read_segmentation_list", "num_segmentation_classes", "read_voc_label", "read_sbd_label",
           "voc_split_samples", "assemble_train_aug",
           "save_sample_list", "check_official_sizes", "SegmentationDataset"]

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
IGNORE_LABEL = 255
# Official list sizes (VOC2012 devkit, SBD release, DeepLab's train_aug).
OFFICIAL_SIZES = {"voc_train": 1464, "voc_val": 1449, "sbd_train": 8498, "sbd_val": 2857, "train_aug": 10582}


class SegSample(NamedTuple):
    """One image: its id, image file, label file and label format ("png" or "sbd_mat")."""
    id: str
    image: str
    label: str
    label_format: str


def voc_palette() -> List[int]:
    """The devkit's 256-colour palette (``VOClabelcolormap.m``: bits of the index spread over RGB), flat."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def _first_dir(candidates: Sequence[str], required: Sequence[str]) -> Optional[str]:
    for d in candidates:
        if all(os.path.exists(os.path.join(d, r)) for r in required):
            return d
    return None


def find_voc2012(root: str) -> str:
    """The VOC2012 folder under ``root`` (``root`` itself, ``root/VOC2012`` or ``root/VOCdevkit/VOC2012``).

    Raises:
        FileNotFoundError: none of them has ``JPEGImages``, ``SegmentationClass`` and
            ``ImageSets/Segmentation``.
    """
    required = ("JPEGImages", "SegmentationClass", os.path.join("ImageSets", "Segmentation"))
    candidates = [root, os.path.join(root, "VOC2012"), os.path.join(root, "VOCdevkit", "VOC2012")]
    found = _first_dir(candidates, required)
    if found is None:
        raise FileNotFoundError(f"no VOC2012 segmentation data under {os.path.abspath(root)}: expected "
                                f"{'/'.join(['<dir>', '{' + ','.join(required) + '}'])} in one of {candidates}")
    return found


def find_sbd(root: str) -> Optional[str]:
    """SBD's ``dataset`` folder (``cls/``, ``img/``, ``train.txt``, ``val.txt``) under ``root``, or None."""
    names = ("", "dataset", os.path.join("benchmark_RELEASE", "dataset"), os.path.join("SBD", "dataset"),
             os.path.join("sbd", "dataset"))
    return _first_dir([os.path.join(root, n) for n in names], ("cls", "img", "train.txt", "val.txt"))


def num_segmentation_classes(voc_dir: str) -> int:
    """Classes including background: 21 for VOC, ``len(classes.txt) + 1`` for a set that declares its own."""
    return len(load_class_names(voc_dir)) + 1


def read_segmentation_list(path: str) -> List[str]:
    """Image ids of an SBD list file (one id per line, blank lines skipped)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image list not found: {path}")
    with open(path, encoding="utf-8") as f:
        ids = [line.split()[0] for line in f if line.strip()]
    if not ids:
        raise ValueError(f"{path}: empty image list")
    return ids


def read_voc_label(path: str) -> np.ndarray:
    """Class-index map ``uint8 [H, W]`` of a VOC ``SegmentationClass`` palette PNG.

    Raises:
        ValueError: the PNG is not single-channel (a colour rendering of the labels is not a label map).
    """
    with Image.open(path) as im:
        if im.mode not in ("P", "L"):
            raise ValueError(f"{path}: label PNG has mode {im.mode}; expected a palette ('P') or grayscale PNG "
                             f"whose pixel values are class indices (VOC's SegmentationClass format)")
        return np.array(im, dtype=np.uint8)


def read_sbd_label(path: str) -> np.ndarray:
    """Class-index map ``uint8 [H, W]`` from an SBD ``cls/<id>.mat`` (``GTcls.Segmentation``)."""
    try:
        mat = scipy.io.loadmat(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable MATLAB file ({e})") from None
    if "GTcls" not in mat:
        raise KeyError(f"{path}: no 'GTcls' struct (keys: {sorted(k for k in mat if not k.startswith('__'))}); "
                       f"expected SBD's cls/*.mat")
    gt = mat["GTcls"]
    if "Segmentation" not in (gt.dtype.names or ()):
        raise KeyError(f"{path}: GTcls has no 'Segmentation' field (fields: {gt.dtype.names})")
    return np.asarray(gt[0, 0]["Segmentation"], dtype=np.uint8)


def voc_split_samples(voc_dir: str, split: str) -> List[SegSample]:
    """VOC2012 samples of ``ImageSets/Segmentation/<split>.txt`` (files checked to exist)."""
    ids = read_image_set(voc_dir, split, task="Segmentation")
    samples = [SegSample(i, os.path.join(voc_dir, "JPEGImages", f"{i}.jpg"),
                         os.path.join(voc_dir, "SegmentationClass", f"{i}.png"), "png") for i in ids]
    _check_files(samples, f"VOC2012 {split}")
    return samples


def _check_files(samples: Sequence[SegSample], what: str) -> None:
    missing = [p for s in samples for p in (s.image, s.label) if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"{what}: {len(missing)} listed files are missing, e.g. {missing[:3]}")


def assemble_train_aug(voc_dir: str, sbd_dir: Optional[str]) -> Tuple[List[SegSample], dict]:
    """``train_aug`` = SBD train + SBD val + VOC2012 train, minus VOC2012 val (sorted by id).

    Without SBD (``sbd_dir`` None) it is VOC2012 train alone. Returns the samples and the
    sizes of the lists it was built from (for :func:`check_official_sizes` and the log).
    """
    voc_train = {s.id: s for s in voc_split_samples(voc_dir, "train")}
    val_ids = set(read_image_set(voc_dir, "val", task="Segmentation"))
    sizes = {"voc_train": len(voc_train), "voc_val": len(val_ids)}
    merged = dict(voc_train)
    if sbd_dir is not None:
        for split in ("train", "val"):
            ids = read_segmentation_list(os.path.join(sbd_dir, f"{split}.txt"))
            sizes[f"sbd_{split}"] = len(ids)
            extra = [SegSample(i, os.path.join(sbd_dir, "img", f"{i}.jpg"), os.path.join(sbd_dir, "cls", f"{i}.mat"),
                               "sbd_mat") for i in ids if i not in merged]
            _check_files(extra, f"SBD {split}")
            merged.update({s.id: s for s in extra})
    samples = [merged[i] for i in sorted(merged) if i not in val_ids]
    sizes["train_aug"] = len(samples)
    return samples, sizes


def save_sample_list(samples: Sequence[SegSample], path: str) -> None:
    """Write ``<id> <image> <label> <format>`` lines atomically (the assembled list, for the record)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    text = "".join(f"{s.id} {s.image} {s.label} {s.label_format}\n" for s in samples).encode()
    atomic_write(path, lambda f: f.write(text))


def check_official_sizes(sizes: dict) -> None:
    """Raise ``ValueError`` when a list of the official release has the wrong length (a partial copy)."""
    wrong = {k: (v, OFFICIAL_SIZES[k]) for k, v in sizes.items() if k in OFFICIAL_SIZES and v != OFFICIAL_SIZES[k]}
    if wrong:
        detail = ", ".join(f"{k}: {got} images (official {want})" for k, (got, want) in wrong.items())
        raise ValueError(f"VOC2012 / SBD lists do not match the official release ({detail}); is the download "
                         f"complete? Pass the folder as a path (--dataset DIR) to use a non-official copy.")


class SegmentationDataset(Dataset):
    """``(image uint8 [H, W, 3], label uint8 [H, W])`` pairs, passed through ``transform`` if given.

    Args:
        samples: from :func:`voc_split_samples` / :func:`assemble_train_aug`.
        transform: ``f(image, label) -> anything`` (e.g. tensors after scale / crop / flip).
    """

    def __init__(self, samples: Sequence[SegSample], transform=None) -> None:
        self.samples = list(samples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        s = self.samples[index]
        with Image.open(s.image) as im:
            image = np.array(im.convert("RGB"))
        label = read_voc_label(s.label) if s.label_format == "png" else read_sbd_label(s.label)
        if label.shape != image.shape[:2]:
            raise ValueError(f"{s.label}: label map {label.shape} does not match image {s.image} {image.shape[:2]}")
        return image, label

    def __getitem__(self, index: int):
        image, label = self.load(index)
        return self.transform(image, label) if self.transform is not None else (image, label)
