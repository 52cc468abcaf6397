"""DTD reader: labels/{train,val,test}1.txt over images/<class>/."""
import pytest
from PIL import Image

from ssl_zoo.data.readers.dtd import read_dtd


def test_split_1(tmp_path):
    for c in ("banded", "zigzagged"):
        (tmp_path / "images" / c).mkdir(parents=True)
        for i in (1, 2, 3):
            Image.new("RGB", (8, 8)).save(tmp_path / "images" / c / f"{c}_{i:04d}.jpg")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "train1.txt").write_text("banded/banded_0001.jpg\nzigzagged/zigzagged_0001.jpg\n")
    (tmp_path / "labels" / "val1.txt").write_text("banded/banded_0002.jpg\n")
    (tmp_path / "labels" / "test1.txt").write_text("zigzagged/zigzagged_0003.jpg\n")
    (tmp_path / "labels" / "train2.txt").write_text("banded/banded_0003.jpg\n")
    rec = read_dtd(str(tmp_path))
    assert rec.classes == ["banded", "zigzagged"]
    assert rec.splits["train"] == [("images/banded/banded_0001.jpg", 0), ("images/zigzagged/zigzagged_0001.jpg", 1)]
    assert rec.splits["val"] == [("images/banded/banded_0002.jpg", 0)]
    assert rec.splits["test"] == [("images/zigzagged/zigzagged_0003.jpg", 1)]


def test_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="dtd-r1.0.1"):
        read_dtd(str(tmp_path))
