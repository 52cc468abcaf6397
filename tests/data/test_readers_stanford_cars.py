"""Stanford Cars reader on devkit .mat files written with scipy.io.savemat (the devkit's struct layout)."""
import os

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from ssl_zoo.data.readers.stanford_cars import read_stanford_cars

FIELDS = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"), ("fname", "O")]


def _annos(rows):
    a = np.empty((1, len(rows)), dtype=FIELDS)  # a 1 x N MATLAB struct array, as in the devkit
    for i, (fname, c) in enumerate(rows):
        a[0, i] = (np.array([[1]]), np.array([[2]]), np.array([[30]]), np.array([[20]]), np.array([[c]], np.uint8),
                   np.array([fname]))
    return {"annotations": a}


def test_devkit_mat_files(tmp_path):
    (tmp_path / "devkit").mkdir()
    names = np.empty((1, 3), dtype=object)
    names[0, :] = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Audi R8 Coupe 2012"]
    savemat(tmp_path / "devkit" / "cars_meta.mat", {"class_names": names})
    savemat(tmp_path / "devkit" / "cars_train_annos.mat", _annos([("00001.jpg", 3), ("00002.jpg", 1)]))
    savemat(tmp_path / "cars_test_annos_withlabels.mat", _annos([("00001.jpg", 2)]))
    for folder, files in (("cars_train", ["00001.jpg", "00002.jpg"]), ("cars_test", ["00001.jpg"])):
        os.makedirs(tmp_path / folder)
        for f in files:
            Image.new("RGB", (10, 10)).save(tmp_path / folder / f)
    rec = read_stanford_cars(str(tmp_path))
    assert rec.classes[2] == "Audi R8 Coupe 2012"
    assert rec.splits["train"] == [("cars_train/00001.jpg", 2), ("cars_train/00002.jpg", 0)]  # 1-based in the .mat
    assert rec.splits["test"] == [("cars_test/00001.jpg", 1)]
    assert rec.load("cars_test/00001.jpg").size == (10, 10)


def test_missing_devkit(tmp_path):
    with pytest.raises(FileNotFoundError, match="cars_meta.mat"):
        read_stanford_cars(str(tmp_path))
