"""The user's ImageFolder route: train/ and test/ (and optional val/) trees."""
import pytest
from PIL import Image

from ssl_zoo.data.readers.image_folder import read_image_folder_splits


def test_train_test_tree(tmp_path):
    for split, classes in (("train", ("b", "a")), ("test", ("a",))):
        for c in classes:
            (tmp_path / split / c).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(tmp_path / split / c / "0.png")
    rec = read_image_folder_splits(str(tmp_path))
    assert rec.classes == ["a", "b"] and "val" not in rec.splits
    assert rec.splits["train"] == [("train/a/0.png", 0), ("train/b/0.png", 1)]
    assert rec.splits["test"] == [("test/a/0.png", 0)]


def test_test_class_unknown_to_train(tmp_path):
    (tmp_path / "train" / "a").mkdir(parents=True)
    (tmp_path / "test" / "z").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "train" / "a" / "0.png")
    with pytest.raises(ValueError, match="'z'"):
        read_image_folder_splits(str(tmp_path))


def test_missing_test(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(FileNotFoundError, match="test"):
        read_image_folder_splits(str(tmp_path))
