"""Folders of your own images: the class-folder / unlabeled rule, recursive discovery, unreadable
files counted, file lists without labels, and the online classifier switched off without labels."""
import logging
import os

import numpy as np
import pytest
from PIL import Image

from ssl_zoo.data.catalog import build_dataset, has_labels
from ssl_zoo.data.datasets import ImageFolderDataset, UnlabeledFolderDataset, folder_layout
from ssl_zoo.engine.defaults import disable_classifier_without_labels


def _png(path, seed=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(path)
    return str(path)


def test_flat_folder_reads_every_image_without_labels(tmp_path):
    made = sorted(_png(tmp_path / f"x{i}.{ext}", i) for i, ext in enumerate(["png", "PNG", "jpg", "png"]))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"")
    assert folder_layout(str(tmp_path)) == "unlabeled"
    ds = build_dataset(str(tmp_path))
    assert isinstance(ds, UnlabeledFolderDataset) and ds.classes == []
    assert sorted(p for p, _ in ds.samples) == made
    img, target = ds[0]
    assert target == -1 and img.size == (10, 12)
    assert not has_labels(str(tmp_path))


def test_nested_folder_is_read_recursively_including_top_level_images(tmp_path):
    made = [_png(tmp_path / "top.png"), _png(tmp_path / "a" / "b" / "deep.png"), _png(tmp_path / "a" / "mid.png"),
            _png(tmp_path / "c" / "d" / "e" / "deeper.png")]
    ds = build_dataset(str(tmp_path))
    assert isinstance(ds, UnlabeledFolderDataset)
    assert sorted(p for p, _ in ds.samples) == sorted(made)
    # No image at the top, but one nested two levels down: still unlabeled (nothing dropped).
    os.remove(made[0])
    assert folder_layout(str(tmp_path)) == "unlabeled"
    assert len(build_dataset(str(tmp_path))) == 3


def test_class_folders_stay_an_image_folder_and_can_be_forced_either_way(tmp_path):
    for c in ("cat", "dog"):
        for i in range(2):
            _png(tmp_path / c / f"{i}.png", i)
    assert folder_layout(str(tmp_path)) == "class_folders" and has_labels(str(tmp_path))
    ds = build_dataset(str(tmp_path))
    assert isinstance(ds, ImageFolderDataset) and ds.classes == ["cat", "dog"] and ds.targets == [0, 0, 1, 1]
    forced = build_dataset(str(tmp_path), folder_labels="none")
    assert isinstance(forced, UnlabeledFolderDataset) and len(forced) == 4 and set(forced.targets) == {-1}
    _png(tmp_path / "stray.png")  # an image at the top makes it unlabeled, unless class folders are forced
    assert isinstance(build_dataset(str(tmp_path)), UnlabeledFolderDataset)
    assert len(build_dataset(str(tmp_path), folder_labels="class_folders")) == 4
    with pytest.raises(ValueError, match="FOLDER_LABELS"):
        build_dataset(str(tmp_path), folder_labels="yes")


def test_unreadable_files_are_counted_and_skipped(tmp_path):
    for i in range(3):
        _png(tmp_path / "sub" / "deeper" / f"{i}.png", i)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    ds = build_dataset(str(tmp_path), corrupt_policy="skip")
    assert ds.num_found == 4 and len(ds) == 3
    assert ds.corrupt_files == [str(tmp_path / "broken.jpg")]
    with pytest.raises(RuntimeError, match="broken.jpg"):  # "fail": the bad file is named when read
        [build_dataset(str(tmp_path))[i] for i in range(4)]


def test_empty_folder_and_symlink_loop(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ValueError, match="No image files under"):
        build_dataset(str(tmp_path / "empty"))
    _png(tmp_path / "loop" / "a.png")
    os.symlink(tmp_path / "loop", tmp_path / "loop" / "again")
    assert len(build_dataset(str(tmp_path / "loop"))) == 1


def test_file_list_without_labels(tmp_path):
    paths = [_png(tmp_path / "imgs" / f"{i}.png", i) for i in range(3)]
    lst = tmp_path / "list.txt"
    lst.write_text("# my images\n" + "\n".join(os.path.relpath(p, tmp_path) for p in paths) + "\n")
    ds = build_dataset(str(lst))
    assert len(ds) == 3 and set(ds.targets) == {-1} and not has_labels(str(lst))


def test_online_classifier_disabled_with_a_warning_when_the_data_have_no_labels(tiny_cfg, tmp_path, caplog):
    _png(tmp_path / "a.png")
    cfg = tiny_cfg.clone()
    cfg.BYOL.ONLINE_CLASSIFIER_CLASSES = 1000
    cfg.DATASETS.TRAIN = str(tmp_path)
    with caplog.at_level(logging.WARNING, logger="ssl_zoo"):
        out = disable_classifier_without_labels(cfg)
    assert out.BYOL.ONLINE_CLASSIFIER_CLASSES == 0 and cfg.BYOL.ONLINE_CLASSIFIER_CLASSES == 1000
    assert "has no labels: the online classifier BYOL.ONLINE_CLASSIFIER_CLASSES=1000 is disabled" in caplog.text
    cfg.DATASETS.TRAIN = "builtin_cifar10_train"  # labelled: kept
    assert disable_classifier_without_labels(cfg) is cfg
