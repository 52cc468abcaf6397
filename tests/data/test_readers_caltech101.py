"""Caltech-101 reader: 102 folders with BACKGROUND_Google kept, grayscale images converted to RGB."""
import pytest
from PIL import Image

from ssl_zoo.data.readers.caltech101 import read_caltech101


def test_keeps_background_and_converts_to_rgb(tmp_path):
    base = tmp_path / "101_ObjectCategories"
    for c in ("accordion", "BACKGROUND_Google", "Faces"):
        (base / c).mkdir(parents=True)
        Image.new("L", (9, 9), 50).save(base / c / "image_0001.jpg")  # grayscale, as some Caltech images
    (base / "Faces" / "notes.txt").write_text("not an image")
    rec = read_caltech101(str(tmp_path))
    assert rec.classes == ["BACKGROUND_Google", "Faces", "accordion"]  # sorted, background included
    assert rec.splits["all"][0] == ("101_ObjectCategories/BACKGROUND_Google/image_0001.jpg", 0)
    assert len(rec.splits["all"]) == 3
    assert rec.load("101_ObjectCategories/Faces/image_0001.jpg").mode == "RGB"


def test_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="BACKGROUND_Google"):
        read_caltech101(str(tmp_path))
