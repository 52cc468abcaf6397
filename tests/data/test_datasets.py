"""Datasets: the shipped CIFAR-10 subset, name/root resolution, corrupt-file policies."""
import io
import os
import random
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from ssl_zoo.data.datasets import BUILTIN_ZIP, load_builtin_cifar10, load_image_folder_in_memory
from ssl_zoo.data.catalog import DATASET_REGISTRY, build_dataset, resolve_root
from ssl_zoo.data.datasets import ImageFolderDataset, InMemoryImageDataset, UnreadableImageError

# CI clones the repo with ../shared beside it.
SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "..", "shared", "data")
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


# ---------------------------------------------------------------------------- corrupt-file report
def test_corrupt_summary_counts_and_names_paths():
    from ssl_zoo.data.datasets import corrupt_summary

    bad = [(f"/d/{i}.jpg", "OSError: broken") for i in range(23)]
    msg = corrupt_summary(bad, 100, "/d")
    assert msg.startswith("Skipped 23 unreadable image(s) of 100 under /d")
    assert "/d/0.jpg (OSError: broken)" in msg and "/d/19.jpg" in msg and "/d/20.jpg" not in msg
    assert "... and 3 more" in msg


# ---------------------------------------------------------------------------- file lists
def _save(path, size=(10, 8), value=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, dtype=np.uint8)).save(path)


def test_file_list_integer_labels_relative_to_list_folder(tmp_path):
    from ssl_zoo.data.datasets import FileListDataset

    for i in range(4):
        _save(str(tmp_path / "imgs" / f"im {i}.png"), value=10 * i)  # a space in the name
    (tmp_path / "train.txt").write_text("# comment\nimgs/im 0.png 2\n\nimgs/im 1.png 0\nimgs/im 2.png 2\n")
    ds = build_dataset(str(tmp_path / "train.txt"))
    assert isinstance(ds, FileListDataset) and len(ds) == 3
    assert ds.targets == [2, 0, 2] and ds.classes == ["0", "1", "2"]
    img, target = ds[1]
    assert target == 0 and img.size == (10, 8) and img.getpixel((0, 0)) == (10, 10, 10)
    assert ds.samples[0][0] == str(tmp_path / "imgs" / "im 0.png")


def test_file_list_class_names_explicit_root_and_unlabeled(tmp_path):
    from ssl_zoo.data.datasets import FileListDataset

    for name in ("a.png", "b.png", "c.png"):
        _save(str(tmp_path / "data" / name))
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "named.txt").write_text("a.png zebra\nb.png ant\nc.png zebra\n")
    ds = build_dataset(str(lists / "named.txt"), root=str(tmp_path / "data"))
    assert ds.classes == ["ant", "zebra"] and ds.targets == [1, 0, 1]
    (lists / "unlabeled.txt").write_text(f"{tmp_path / 'data' / 'a.png'}\nb.png\n")  # absolute path kept
    ds = FileListDataset(str(lists / "unlabeled.txt"), root=str(tmp_path / "data"))
    assert ds.targets == [-1, -1] and ds[0][1] == -1 and ds[1][0].size == (10, 8)


@pytest.mark.parametrize("text,match", [("a.png 1\nb.png\n", r"x\.txt:2: line without a label"),
                                        ("a.png 1\nb.png cat\n", r"x\.txt:2: mixes"),
                                        ("a.png -1\n", r"x\.txt:1: negative label"),
                                        ("# only a comment\n", "no samples")])
def test_file_list_malformed_lines_name_file_and_line(tmp_path, text, match):
    (tmp_path / "x.txt").write_text(text)
    with pytest.raises(ValueError, match=match):
        build_dataset(str(tmp_path / "x.txt"))


def test_file_list_corrupt_and_missing_files(tmp_path):
    _save(str(tmp_path / "ok.png"))
    (tmp_path / "garbage.png").write_bytes(b"not a png")
    (tmp_path / "list.txt").write_text("ok.png 0\ngarbage.png 1\nmissing.png 1\n")
    ds = build_dataset(str(tmp_path / "list.txt"), corrupt_policy="fail")
    with pytest.raises(UnreadableImageError, match="garbage.png"):
        ds[1]
    with pytest.raises(UnreadableImageError, match="missing.png"):
        ds[2]
    with pytest.warns(UserWarning, match="Skipped 2 unreadable image.s. of 3"):
        ds = build_dataset(str(tmp_path / "list.txt"), corrupt_policy="skip")
    assert len(ds) == 1 and ds.targets == [0]
    assert sorted(ds.corrupt_files) == [str(tmp_path / "garbage.png"), str(tmp_path / "missing.png")]


# ---------------------------------------------------------------------------- STL-10
def _write_fake_stl10(folder, n_train=6, n_test=4, n_unlabeled=5, seed=0):
    """Official stl10_binary format: per image 3 x 96 x 96 uint8, column-major per channel; labels 1..10."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test), ("unlabeled", n_unlabeled)):
        imgs = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)  # [N, C, H(row), W(col)]
        imgs.transpose(0, 1, 3, 2).tofile(os.path.join(folder, f"{split}_X.bin"))  # columns outer on disk
        labels = (np.arange(n) % 10).astype(np.int64)
        if split != "unlabeled":
            (labels + 1).astype(np.uint8).tofile(os.path.join(folder, f"{split}_y.bin"))
        arrays[split] = (imgs, labels)
    with open(os.path.join(folder, "class_names.txt"), "w") as f:
        f.write("\n".join(["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]))
    return arrays


def test_stl10_binary_splits(tmp_path):
    arrays = _write_fake_stl10(str(tmp_path / "stl10_binary"))
    train = build_dataset("stl10_train", root=str(tmp_path))
    test = build_dataset("stl10", root=str(tmp_path), train=False)
    unlabeled = build_dataset("stl10_unlabeled", root=str(tmp_path))
    both = build_dataset("stl10_train_unlabeled", root=str(tmp_path))
    for ds, split in ((train, "train"), (test, "test"), (unlabeled, "unlabeled")):
        assert isinstance(ds, InMemoryImageDataset) and ds.image_size == (96, 96)
        assert torch.equal(ds.images, torch.from_numpy(arrays[split][0]))
    assert train.targets.tolist() == list(range(6)) and test.targets.tolist() == [0, 1, 2, 3]
    assert unlabeled.targets.tolist() == [-1] * 5 and train.classes[7] == "monkey"
    assert len(both) == 11 and both.targets.tolist() == list(range(6)) + [-1] * 5
    assert torch.equal(both.images[6:], unlabeled.images)


def test_stl10_reader_agrees_with_torchvision(tmp_path):
    """torchvision.datasets.STL10 refuses files without the official MD5 sums; its loader is called directly."""
    from torchvision.datasets import STL10

    from ssl_zoo.data.datasets import read_stl10_binary

    _write_fake_stl10(str(tmp_path / "stl10_binary"))
    tv = object.__new__(STL10)
    tv.root = str(tmp_path)
    ref_x, ref_y = tv._STL10__loadfile("train_X.bin", "train_y.bin")
    images, labels = read_stl10_binary(str(tmp_path / "stl10_binary"), "train")
    assert torch.equal(images, torch.from_numpy(ref_x)) and labels.tolist() == ref_y.astype(int).tolist()
    img, _ = build_dataset("stl10_train", root=str(tmp_path))[2]  # PIL view matches torchvision's __getitem__
    assert np.array_equal(np.asarray(img), np.transpose(ref_x[2], (1, 2, 0)))


def test_stl10_folder_copy_and_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_ZOO_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="stl10_binary") as e:
        build_dataset("stl10_unlabeled", root=str(tmp_path))
    assert os.path.join(str(tmp_path), "stl10", "unlabeled") in str(e.value)
    for i in range(3):
        _save(str(tmp_path / "stl10" / "unlabeled" / "all" / f"{i}.png"), size=(96, 96), value=i)
        _save(str(tmp_path / "stl10" / "train" / ("cat" if i else "dog") / f"{i}.png"), size=(96, 96))
    ds = build_dataset("stl10_unlabeled", root=str(tmp_path))
    assert ds.images.shape == (3, 3, 96, 96) and ds.targets.tolist() == [-1, -1, -1]
    assert build_dataset("stl10_train", root=str(tmp_path)).targets.tolist() == [0, 0, 1]


# ---------------------------------------------------------------------------- Imagenette
def test_imagenette_variants(tmp_path):
    for split in ("train", "val"):
        for wnid in ("n01440764", "n02102040"):
            _save(str(tmp_path / "imagenette2-160" / split / wnid / f"{split}.JPEG"), size=(213, 160))
    ds = build_dataset("imagenette_train", root=str(tmp_path))
    assert isinstance(ds, ImageFolderDataset) and ds.classes == ["n01440764", "n02102040"] and len(ds) == 2
    assert ds[0][0].size == (213, 160)
    assert len(build_dataset("imagenette160", root=str(tmp_path), train=False)) == 2
    with pytest.raises(FileNotFoundError, match="imagenette2-320"):
        build_dataset("imagenette320_val", root=str(tmp_path))


# ---------------------------------------------------------------------------- subsets
def _naive_subset(targets, k_of_n, seed):
    """Reference: per class, a seeded permutation's first k."""
    from ssl_zoo.data.samplers import mix_seed

    out = []
    for c in sorted(set(targets.tolist())):
        members = [i for i, t in enumerate(targets.tolist()) if t == c]
        perm = torch.randperm(len(members), generator=torch.Generator().manual_seed(mix_seed(seed, c)))
        out += [members[j] for j in perm[: k_of_n(len(members))].tolist()]
    return sorted(out)


def test_subset_indices_balanced_deterministic_nested():
    from ssl_zoo.data.subset import subset_indices

    order = torch.randperm(97, generator=torch.Generator().manual_seed(1))
    targets = torch.tensor([0] * 50 + [1] * 30 + [2] * 7 + [-1] * 10)[order]
    idx = subset_indices(targets, fraction=0.1, seed=3)
    assert torch.bincount(targets[idx] + 1).tolist() == [1, 5, 3, 1]  # round(0.1 n), at least 1
    assert idx.tolist() == _naive_subset(targets, lambda n: max(1, int(0.1 * n + 0.5)), 3)
    assert torch.equal(idx, subset_indices(targets, fraction=0.1, seed=3))  # deterministic
    assert not torch.equal(idx, subset_indices(targets, fraction=0.1, seed=4))
    big = subset_indices(targets, fraction=0.5, seed=3)
    assert set(idx.tolist()) <= set(big.tolist())  # 10% split inside the 50% split
    per = subset_indices(targets, per_class=8, seed=3)
    assert torch.bincount(targets[per] + 1).tolist() == [8, 8, 8, 7]
    assert subset_indices(targets, fraction=1.0).tolist() == list(range(97))
    # one class's draw does not depend on the others
    only0 = subset_indices(targets[targets == 0], per_class=5, seed=3)
    per5 = subset_indices(targets, per_class=5, seed=3)
    assert torch.equal((targets == 0).nonzero().squeeze(1)[only0], per5[targets[per5] == 0])
    with pytest.raises(ValueError, match="not both"):
        subset_indices(targets, fraction=0.1, per_class=2)
    with pytest.raises(ValueError):
        subset_indices(targets)


def test_subset_keeps_dataset_kind(tmp_path, builtin):
    from ssl_zoo.data.subset import SubsetSpec, subset_indices

    ds = build_dataset("builtin_cifar10_test", subset=SubsetSpec(per_class=3, seed=1))
    full = builtin[1]
    assert isinstance(ds, InMemoryImageDataset) and len(ds) == 30
    assert torch.equal(ds.subset_indices, subset_indices(full.targets, per_class=3, seed=1))
    assert torch.equal(ds.images, full.images[ds.subset_indices]) and ds.classes == full.classes
    _write_folder(tmp_path, n_per_class=4)
    with pytest.warns(UserWarning, match="Skipped 2"):
        folder = build_dataset(str(tmp_path), subset=SubsetSpec(fraction=0.5), corrupt_policy="skip")
    assert isinstance(folder, ImageFolderDataset) and sorted(folder.targets) == [0, 0, 1, 1]
    assert len(folder.corrupt_files) == 2 and all(folder[i][0].size == (20, 12) for i in range(4))
    assert len(build_dataset(str(tmp_path), subset=SubsetSpec())) == 10  # inactive: the full folder


def test_subset_from_config_reaches_the_train_loader():
    from ssl_zoo.config import get_cfg
    from ssl_zoo.data.build import build_train_loader
    from ssl_zoo.data.subset import SubsetSpec, subset_from_cfg

    cfg = get_cfg()
    assert subset_from_cfg(cfg) is None
    cfg.merge_from_list(["DATASETS.TRAIN", "builtin_cifar10_train", "DATASETS.TRAIN_SUBSET_PER_CLASS", 20,
                         "SOLVER.IMS_PER_BATCH", 50, "INPUT.AUG_PRESET", "byol_cifar", "INPUT.IMAGE_SIZE", 32,
                         "DEVICE", "cpu", "DATALOADER.NUM_WORKERS", 0])
    assert subset_from_cfg(cfg) == SubsetSpec(per_class=20, seed=0)
    data = build_train_loader(cfg)
    assert data.num_images == 200 and data.iters_per_epoch == 4
    assert torch.equal(torch.bincount(data.dataset.targets), torch.full((10,), 20))
