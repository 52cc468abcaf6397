"""The built-in dataset names (detectron2's ``data/datasets/builtin.py``): each registers a
loader ``f(root, train, transform, corrupt_policy)`` in :data:`~ssl_zoo.data.catalog.DATASET_REGISTRY`.

* ``builtin_cifar10_{train,test}``: the shipped 5,000 / 1,000 image CIFAR-10 subset;
* ``cifar10_*`` / ``cifar100_*``: the official python archive or an ImageFolder copy;
* ``imagenet_{train,val}``: ImageFolder at ``root/imagenet/{train,val}``;
* ``stl10_{train,test,unlabeled,train_unlabeled}``: STL-10 (binary archive or ImageFolder copy);
* ``imagenette*_{train,val}``: fast.ai's Imagenette (``imagenette_*`` takes the first of
  imagenette2, imagenette2-320, imagenette2-160 found; ``imagenette320_*`` / ``imagenette160_*``
  ask for one size).
"""
from __future__ import annotations

import os

import numpy as np
import torch
from torchvision.datasets import CIFAR10, CIFAR100

from ssl_zoo.data.catalog import DATASET_REGISTRY, register_split_names
from ssl_zoo.data.datasets.base import ROOT_HINT, ImageFolderDataset, InMemoryImageDataset, require_dir
from ssl_zoo.data.datasets.in_memory import load_builtin_cifar10, load_image_folder_in_memory
from ssl_zoo.data.datasets.stl10 import load_stl10


def _split_name(train: bool) -> str:
    return "train" if train else "test"


def _cifar(root: str, train: bool, transform, corrupt_policy: str, num_classes: int):
    """Official python archive (root/cifar-10-batches-py, root/cifar-100-python) or an
    ImageFolder copy (root/cifar{10,100}/{train,test}); both become in-memory datasets."""
    cls, folder = (CIFAR10, "cifar-10-batches-py") if num_classes == 10 else (CIFAR100, "cifar-100-python")
    if os.path.isdir(os.path.join(root, folder)):
        ds = cls(root, train=train, download=False)
        images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2)  # NHWC -> NCHW
        return InMemoryImageDataset(images, torch.tensor(ds.targets), ds.classes, transform)
    copy = os.path.join(root, f"cifar{num_classes}", _split_name(train))
    if os.path.isdir(copy):
        return load_image_folder_in_memory(copy, transform=transform, corrupt_policy=corrupt_policy)
    raise FileNotFoundError(
        f"CIFAR-{num_classes}: neither {os.path.join(root, folder)} (official python archive, extracted) "
        f"nor {copy} (ImageFolder copy) exists; {ROOT_HINT}.")


def _builtin_cifar10(root, train, transform, policy):
    return load_builtin_cifar10(train=train, transform=transform)


def _imagenet(root, train, transform, policy):
    path = os.path.join(root, "imagenet", "train" if train else "val")
    return ImageFolderDataset(require_dir(path, "ImageNet (ImageFolder layout)"), transform, policy)


register_split_names("builtin_cifar10", _builtin_cifar10)
register_split_names("cifar10", lambda r, t, tr, p: _cifar(r, t, tr, p, 10))
register_split_names("cifar100", lambda r, t, tr, p: _cifar(r, t, tr, p, 100))
register_split_names("imagenet", _imagenet, test_suffix="val")


register_split_names("stl10", lambda r, t, tr, p: load_stl10(r, ("train",) if t else ("test",), tr, p))
DATASET_REGISTRY.register(lambda r, t, tr, p: load_stl10(r, ("unlabeled",), tr, p), name="stl10_unlabeled")
DATASET_REGISTRY.register(lambda r, t, tr, p: load_stl10(r, ("train", "unlabeled"), tr, p), name="stl10_train_unlabeled")


# ---------------------------------------------------------------------------- Imagenette
_IMAGENETTE = {"": ("imagenette2", "imagenette2-320", "imagenette2-160"),
               "320": ("imagenette2-320",), "160": ("imagenette2-160",)}


def _imagenette(root: str, train: bool, transform, policy, variant: str = "") -> ImageFolderDataset:
    split = "train" if train else "val"
    tried = [os.path.join(root, folder, split) for folder in _IMAGENETTE[variant]]
    for path in tried:
        if os.path.isdir(path):
            return ImageFolderDataset(path, transform, policy)
    require_dir(tried[0], f"Imagenette (ImageFolder layout; tried {', '.join(tried)})")
    raise AssertionError("unreachable")


for _variant in _IMAGENETTE:
    register_split_names(f"imagenette{_variant}", lambda r, t, tr, p, v=_variant: _imagenette(r, t, tr, p, v),
                          test_suffix="val")
