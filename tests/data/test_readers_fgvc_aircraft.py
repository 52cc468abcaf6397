"""FGVC-Aircraft reader: variant lists with names containing spaces and slashes."""

import pytest
from PIL import Image

from ssl_zoo.data.readers.fgvc_aircraft import read_fgvc_aircraft


def test_variant_splits(tmp_path):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "variants.txt").write_text("707-320\nCessna 172\nF/A-18\n")
    (data / "images_variant_train.txt").write_text("1025794 707-320\n0056978 Cessna 172\n")
    (data / "images_variant_val.txt").write_text("1340192 F/A-18\n")
    (data / "images_variant_test.txt").write_text("0062765 Cessna 172\n")
    for i in ("1025794", "0056978", "1340192", "0062765"):
        Image.new("RGB", (20, 30)).save(data / "images" / f"{i}.jpg")
    rec = read_fgvc_aircraft(str(tmp_path))
    assert rec.splits["train"] == [("data/images/1025794.jpg", 0), ("data/images/0056978.jpg", 1)]
    assert rec.splits["val"] == [("data/images/1340192.jpg", 2)]
    assert rec.splits["test"] == [("data/images/0062765.jpg", 1)]
    assert rec.load("data/images/0062765.jpg").size == (20, 30)


def test_unknown_variant(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "variants.txt").write_text("A300B4\n")
    for s in ("train", "val", "test"):
        (data / f"images_variant_{s}.txt").write_text("0001 Boeing 717\n")
    with pytest.raises(ValueError, match="'Boeing 717'"):
        read_fgvc_aircraft(str(tmp_path))


def test_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="fgvc-aircraft-2013b"):
        read_fgvc_aircraft(str(tmp_path))
