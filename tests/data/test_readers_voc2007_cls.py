"""VOC2007 multi-label classification targets from the XML (difficult-only classes are ignored = 0)."""
import os

import pytest
import torch
from PIL import Image

from ssl_zoo.data.readers.voc import VOC_CLASSES
from ssl_zoo.data.readers.voc2007_cls import read_voc2007_classification


def _xml(objects):
    objs = "".join(f"<object><name>{n}</name><difficult>{int(d)}</difficult><bndbox><xmin>1</xmin><ymin>1</ymin>"
                   f"<xmax>5</xmax><ymax>5</ymax></bndbox></object>" for n, d in objects)
    return f"<annotation><filename>x.jpg</filename><size><width>8</width><height>8</height></size>{objs}</annotation>"


def test_devkit_classification_labels(tmp_path):
    anns = {"000001": [("dog", 0), ("dog", 1), ("person", 1)],  # dog present, person difficult only
            "000002": [("cat", 0)], "000003": [("person", 0), ("person", 1)]}
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        os.makedirs(tmp_path / sub)
    for i, objs in anns.items():
        (tmp_path / "Annotations" / f"{i}.xml").write_text(_xml(objs))
        Image.new("RGB", (8, 8)).save(tmp_path / "JPEGImages" / f"{i}.jpg")
    for split, ids in (("train", ["000001"]), ("val", ["000002"]), ("test", ["000003"])):
        (tmp_path / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    rec = read_voc2007_classification(str(tmp_path))
    assert rec.multilabel and rec.classes == list(VOC_CLASSES)
    (path, t), = rec.splits["train"]
    assert path == "JPEGImages/000001.jpg"
    expected = torch.full((20,), -1, dtype=torch.int8)
    expected[VOC_CLASSES.index("dog")] = 1
    expected[VOC_CLASSES.index("person")] = 0
    assert torch.equal(t, expected)
    assert int(rec.splits["test"][0][1][VOC_CLASSES.index("person")]) == 1  # one non-difficult is enough


def test_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="VOCtest_06-Nov-2007.tar"):
        read_voc2007_classification(str(tmp_path))
