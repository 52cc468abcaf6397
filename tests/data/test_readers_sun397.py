"""SUN397 reader: official partition files (ClassName.txt, Training_01.txt, Testing_01.txt)."""
import os

import pytest
from PIL import Image

from ssl_zoo.data.readers.sun397 import read_sun397


def test_partition_1(tmp_path):
    parts = tmp_path / "Partitions"
    parts.mkdir()
    (parts / "ClassName.txt").write_text("/a/abbey\n/b/bus_interior\n/o/outhouse/outdoor\n")
    (parts / "Training_01.txt").write_text("/a/abbey/sun_a1.jpg\n/o/outhouse/outdoor/sun_o1.jpg\n")
    (parts / "Testing_01.txt").write_text("/b/bus_interior/sun_b1.jpg\n")
    for p in ("a/abbey/sun_a1.jpg", "o/outhouse/outdoor/sun_o1.jpg", "b/bus_interior/sun_b1.jpg"):
        os.makedirs(tmp_path / "SUN397" / os.path.dirname(p), exist_ok=True)
        Image.new("L", (9, 7)).save(tmp_path / "SUN397" / p, format="PNG")  # a ".jpg" that is not JPEG
    rec = read_sun397(str(tmp_path))
    assert rec.classes == ["a/abbey", "b/bus_interior", "o/outhouse/outdoor"]
    assert rec.splits["train"] == [("SUN397/a/abbey/sun_a1.jpg", 0), ("SUN397/o/outhouse/outdoor/sun_o1.jpg", 2)]
    assert rec.splits["test"] == [("SUN397/b/bus_interior/sun_b1.jpg", 1)]
    assert rec.load("SUN397/b/bus_interior/sun_b1.jpg").mode == "RGB"


def test_unknown_class_in_partition(tmp_path):
    (tmp_path / "Partitions").mkdir()
    (tmp_path / "SUN397").mkdir()
    (tmp_path / "Partitions" / "ClassName.txt").write_text("/a/abbey\n")
    (tmp_path / "Partitions" / "Training_01.txt").write_text("/z/zoo/sun_z.jpg\n")
    (tmp_path / "Partitions" / "Testing_01.txt").write_text("")
    with pytest.raises(ValueError, match="'z/zoo'"):
        read_sun397(str(tmp_path))


def test_missing_partitions(tmp_path):
    with pytest.raises(FileNotFoundError, match="Partitions.zip"):
        read_sun397(str(tmp_path))
