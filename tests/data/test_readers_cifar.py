"""CIFAR reader: the official python archive (pickled batches) and an ImageFolder copy."""
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from ssl_zoo.data.readers.cifar import read_cifar


def _write_archive(root):
    base = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(base)
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        data = rng.integers(0, 255, (2, 3072), dtype=np.uint8)
        with open(os.path.join(base, f"data_batch_{i}"), "wb") as f:
            pickle.dump({"data": data, "labels": [i % 10, (i + 1) % 10]}, f)
    with open(os.path.join(base, "test_batch"), "wb") as f:
        pickle.dump({"data": np.full((1, 3072), 7, np.uint8), "labels": [3]}, f)
    with open(os.path.join(base, "batches.meta"), "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)


def test_python_archive(tmp_path, monkeypatch):
    _write_archive(str(tmp_path))
    import torchvision.datasets.cifar as tv_cifar
    monkeypatch.setattr(tv_cifar.CIFAR10, "_check_integrity", lambda self: True)  # the fixture has other md5s
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    rec = read_cifar(str(tmp_path), 10)
    assert len(rec.splits["train"]) == 10 and rec.splits["test"] == [("test/0", 3)]
    assert rec.splits["train"][0] == ("train/0", 1)
    img = rec.load("test/0")
    assert img.mode == "RGB" and img.size == (32, 32) and img.getpixel((5, 5)) == (7, 7, 7)


def test_image_folder_copy(tmp_path):
    for split, n in (("train", 2), ("test", 1)):
        for c in ("cat", "airplane"):
            d = tmp_path / "cifar10" / split / c
            d.mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (32, 32)).save(d / f"{i}.png")
    rec = read_cifar(str(tmp_path), 10)
    assert rec.classes == ["airplane", "cat"]
    assert rec.splits["test"] == [("test/airplane/0.png", 0), ("test/cat/0.png", 1)]
    assert rec.load("train/cat/1.png").size == (32, 32)


def test_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        read_cifar(str(tmp_path), 100)
