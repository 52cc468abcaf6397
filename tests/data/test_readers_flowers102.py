"""Flowers-102 reader: imagelabels.mat and setid.mat (1-based ids and labels) via scipy.io.savemat."""
import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from ssl_zoo.data.readers.flowers102 import read_flowers102


def test_setid_splits_and_zero_based_labels(tmp_path):
    (tmp_path / "jpg").mkdir()
    for i in range(1, 7):
        Image.new("RGB", (8, 8)).save(tmp_path / "jpg" / f"image_{i:05d}.jpg")
    savemat(tmp_path / "imagelabels.mat", {"labels": np.array([[77, 77, 1, 102, 1, 77]], dtype=np.uint8)})
    savemat(tmp_path / "setid.mat", {"trnid": np.array([[3, 1]], np.uint16), "valid": np.array([[2]], np.uint16),
                                     "tstid": np.array([[4, 5, 6]], np.uint16)})
    rec = read_flowers102(str(tmp_path))
    assert len(rec.classes) == 102
    assert rec.splits["train"] == [("jpg/image_00001.jpg", 76), ("jpg/image_00003.jpg", 0)]
    assert rec.splits["val"] == [("jpg/image_00002.jpg", 76)]
    assert rec.splits["test"] == [("jpg/image_00004.jpg", 101), ("jpg/image_00005.jpg", 0), ("jpg/image_00006.jpg", 76)]


def test_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="setid.mat"):
        read_flowers102(str(tmp_path))
