"""Oxford-IIIT Pets reader: annotations/{trainval,test}.txt with 1-based class ids."""
import pytest
from PIL import Image

from ssl_zoo.data.readers.oxford_pets import read_oxford_pets


def test_trainval_and_test(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "trainval.txt").write_text(
        "#Image CLASS-ID SPECIES BREED ID\nAbyssinian_100 1 1 1\namerican_bulldog_10 2 2 1\nAbyssinian_101 1 1 1\n")
    (tmp_path / "annotations" / "test.txt").write_text("american_bulldog_11 2 2 1\n")
    for n in ("Abyssinian_100", "Abyssinian_101", "american_bulldog_10", "american_bulldog_11"):
        Image.new("RGB", (8, 8)).save(tmp_path / "images" / f"{n}.jpg")
    rec = read_oxford_pets(str(tmp_path))
    assert rec.classes == ["Abyssinian", "american_bulldog"]
    assert rec.splits["train"] == [("images/Abyssinian_100.jpg", 0), ("images/american_bulldog_10.jpg", 1),
                                   ("images/Abyssinian_101.jpg", 0)]
    assert rec.splits["test"] == [("images/american_bulldog_11.jpg", 1)]


def test_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="annotations.tar.gz"):
        read_oxford_pets(str(tmp_path))
