"""Food-101 reader on a fixture in the release's layout (meta/*.json, meta/classes.txt, images/)."""
import json
import os

import pytest
from PIL import Image

from ssl_zoo.data.readers.food101 import read_food101


def _image(path, mode="RGB"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new(mode, (12, 9), 80).save(path)


def test_reads_json_splits_in_class_order(tmp_path):
    root = tmp_path / "food-101"
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "classes.txt").write_text("apple_pie\nbaby_back_ribs\n")
    (root / "meta" / "train.json").write_text(json.dumps({"baby_back_ribs": ["baby_back_ribs/7"],
                                                          "apple_pie": ["apple_pie/1", "apple_pie/2"]}))
    (root / "meta" / "test.json").write_text(json.dumps({"apple_pie": ["apple_pie/3"]}))
    for name in ("apple_pie/1", "apple_pie/2", "apple_pie/3", "baby_back_ribs/7"):
        _image(str(root / "images" / f"{name}.jpg"))
    rec = read_food101(str(root))
    assert rec.classes == ["apple_pie", "baby_back_ribs"]
    assert rec.splits["train"] == [("images/apple_pie/1.jpg", 0), ("images/apple_pie/2.jpg", 0),
                                   ("images/baby_back_ribs/7.jpg", 1)]
    assert rec.splits["test"] == [("images/apple_pie/3.jpg", 0)]
    assert rec.load("images/apple_pie/3.jpg").size == (12, 9)


def test_missing_release_says_what_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="food-101.tar.gz"):
        read_food101(str(tmp_path / "food-101"))
