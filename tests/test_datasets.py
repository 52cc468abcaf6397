"""Datasets: the shipped CIFAR-10 subset, name/root resolution, corrupt-file policies."""
import io
import os
import random
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from ssl_zoo.data.builtin import BUILTIN_ZIP, load_builtin_cifar10, load_image_folder_in_memory
from ssl_zoo.data.datasets import (DATASET_REGISTRY, ImageFolderDataset, InMemoryImageDataset, UnreadableImageError,
                                   build_dataset, resolve_root)

SHARED = "/work/shared/data"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(scope="module")
def builtin():
    return load_builtin_cifar10(train=True), load_builtin_cifar10(train=False)


def test_builtin_sizes_balance_dtype(builtin):
    train, test = builtin
    for ds, n, per_class in ((train, 5000, 500), (test, 1000, 100)):
        assert isinstance(ds, InMemoryImageDataset)
        assert len(ds) == n and ds.images.shape == (n, 3, 32, 32)
        assert ds.images.dtype == torch.uint8 and ds.targets.dtype == torch.int64
        assert ds.classes == CLASSES  # class ids follow sorted class names, as ImageFolder
        assert torch.equal(torch.bincount(ds.targets, minlength=10), torch.full((10,), per_class))
        assert ds.corrupt_files == []
    assert 60 < train.images.float().mean() < 200  # real pixels, not zeros


def test_builtin_zip_layout_and_readme():
    with zipfile.ZipFile(BUILTIN_ZIP) as zf:
        names = zf.namelist()
        readme = zf.read("README.txt").decode()
    jpgs = [n for n in names if n.endswith(".jpg")]
    assert len(jpgs) == 6000
    assert {n.split("/")[0] for n in jpgs} == {"train", "test"}
    assert "Krizhevsky" in readme and "2009" in readme
    assert os.path.getsize(BUILTIN_ZIP) < 10e6


@pytest.mark.skipif(not os.path.isdir(SHARED), reason="shared CIFAR-10 JPEG archives not available")
def test_builtin_zip_bytes_identical_to_source():
    rng = random.Random(0)
    with zipfile.ZipFile(BUILTIN_ZIP) as zf:
        names = [n for n in zf.namelist() if n.endswith(".jpg")]
        for split in ("train", "test"):
            with zipfile.ZipFile(os.path.join(SHARED, f"cifar10-{split}.zip")) as src:
                for name in rng.sample([n for n in names if n.startswith(split + "/")], 6):
                    assert zf.read(name) == src.read(name), name


def test_builtin_decoded_pixels_match_zip(builtin):
    """Image i of the dataset is the i-th JPEG in (class, file name) order, decoded by PIL."""
    train, _ = builtin
    with zipfile.ZipFile(BUILTIN_ZIP) as zf:
        names = sorted(n for n in zf.namelist() if n.startswith("train/") and n.endswith(".jpg"))
        for i in (0, 777, 4999):
            ref = np.array(Image.open(io.BytesIO(zf.read(names[i]))).convert("RGB"))
            assert torch.equal(train.images[i], torch.from_numpy(ref).permute(2, 0, 1))
            assert train.classes[train.targets[i]] == names[i].split("/")[1]


def test_builtin_cache_written_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_ZOO_CACHE", str(tmp_path))
    a = load_builtin_cifar10(train=False)
    cached = list(tmp_path.glob("builtin_cifar10_5k-*.npz"))
    assert len(cached) == 1
    b = load_builtin_cifar10(train=False)  # from the .npz
    assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets) and a.classes == b.classes


def test_build_dataset_names_and_getitem(builtin):
    ds = build_dataset("builtin_cifar10_test", transform=lambda im: torch.tensor(im.size))
    size, target = ds[3]
    assert size.tolist() == [32, 32] and target == int(builtin[1].targets[3])
    img, _ = build_dataset("builtin_cifar10", train=False)[3]
    assert isinstance(img, Image.Image) and img.size == (32, 32)
    for name in ("builtin_cifar10_train", "cifar10_train", "cifar10_test", "cifar100_train", "cifar100_test",
                 "imagenet_train", "imagenet_val"):
        assert name in DATASET_REGISTRY
    with pytest.raises(KeyError, match="not an existing directory"):
        build_dataset("cifar11_train")


def test_root_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("SSL_ZOO_DATASETS", raising=False)
    assert resolve_root("") == os.path.abspath("./datasets")
    monkeypatch.setenv("SSL_ZOO_DATASETS", str(tmp_path))
    assert resolve_root("") == str(tmp_path)
    assert resolve_root("/explicit") == "/explicit"


@pytest.mark.parametrize("name,tail", [("imagenet_train", os.path.join("imagenet", "train")),
                                        ("imagenet_val", os.path.join("imagenet", "val")),
                                        ("cifar10_train", os.path.join("cifar10", "train")),
                                        ("cifar100_test", "cifar-100-python")])
def test_missing_dataset_names_full_path_and_env_var(tmp_path, name, tail):
    with pytest.raises(FileNotFoundError) as e:
        build_dataset(name, root=str(tmp_path))
    msg = str(e.value)
    assert os.path.join(str(tmp_path), tail) in msg
    assert "SSL_ZOO_DATASETS" in msg and "DATASETS.ROOT" in msg


def test_missing_path_names_path(tmp_path):
    path = str(tmp_path / "nope" / "train")
    with pytest.raises(FileNotFoundError, match="nope"):
        build_dataset(path)


def _write_folder(root, n_per_class=3, size=(20, 12)):
    rng = np.random.default_rng(0)
    for cls in ("b_cls", "a_cls"):
        os.makedirs(root / cls)
        for i in range(n_per_class):
            arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / cls / f"{i}.jpg", quality=95)
    good = (root / "a_cls" / "0.jpg").read_bytes()
    truncated = root / "a_cls" / "truncated.jpg"
    truncated.write_bytes(good[: len(good) // 2])
    garbage = root / "b_cls" / "garbage.jpg"
    garbage.write_bytes(b"this is not a jpeg")
    return str(truncated), str(garbage)


def test_corrupt_image_policy_fail_names_file(tmp_path):
    truncated, garbage = _write_folder(tmp_path)
    ds = build_dataset(str(tmp_path), corrupt_policy="fail")
    assert isinstance(ds, ImageFolderDataset) and len(ds) == 8 and ds.classes == ["a_cls", "b_cls"]
    bad = [i for i, (p, _) in enumerate(ds.samples) if p in (truncated, garbage)]
    for i in bad:
        with pytest.raises(UnreadableImageError, match=os.path.basename(ds.samples[i][0])) as e:
            ds[i]
        assert ds.samples[i][0] in str(e.value)
    ok = next(i for i in range(len(ds)) if i not in bad)
    assert ds[ok][0].size == (20, 12)


def test_corrupt_image_policy_skip_reports(tmp_path):
    truncated, garbage = _write_folder(tmp_path)
    with pytest.warns(UserWarning, match="Skipped 2 unreadable"):
        ds = build_dataset(str(tmp_path), corrupt_policy="skip")
    assert len(ds) == 6 and sorted(ds.corrupt_files) == sorted([truncated, garbage])
    assert all(ds[i][0].size == (20, 12) for i in range(len(ds)))
    assert sorted(set(ds.targets)) == [0, 1]


def test_in_memory_folder_copy_and_corrupt_policies(tmp_path, monkeypatch):
    """root/cifar10/{train,test} ImageFolder copies load into memory with the same policies."""
    monkeypatch.setenv("SSL_ZOO_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "cifar10" / "train"
    truncated, garbage = _write_folder(folder, size=(8, 8))
    with pytest.raises(UnreadableImageError, match="garbage.jpg|truncated.jpg"):
        build_dataset("cifar10_train", root=str(tmp_path), corrupt_policy="fail")
    with pytest.warns(UserWarning, match="Skipped 2"):
        ds = build_dataset("cifar10_train", root=str(tmp_path), corrupt_policy="skip")
    assert isinstance(ds, InMemoryImageDataset) and ds.images.shape == (6, 3, 8, 8)
    assert sorted(ds.corrupt_files) == sorted([truncated, garbage])
    assert ds.targets.tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.warns(UserWarning, match="Skipped 2"):  # reported again when loaded from the cache
        again = load_image_folder_in_memory(str(folder), corrupt_policy="skip")
    assert torch.equal(again.images, ds.images)


def test_in_memory_dataset_validates():
    with pytest.raises(ValueError):
        InMemoryImageDataset(torch.zeros(2, 3, 4, 4), torch.zeros(2), ["a"])
    with pytest.raises(ValueError):
        InMemoryImageDataset(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(3), ["a"])


@pytest.mark.skipif(not os.path.isdir(os.path.join(resolve_root(), "cifar-10-batches-py")),
                    reason="official CIFAR-10 python archive not under the dataset root")
def test_official_cifar10_archive():
    ds = build_dataset("cifar10_test")
    assert ds.images.shape == (10000, 3, 32, 32) and ds.classes == CLASSES
