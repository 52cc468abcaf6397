"""VOC reader on a tiny fixture written in the official layout (VOCdevkit/VOC2007)."""
import os
import warnings

import pytest
import torch
from PIL import Image

from ssl_zoo.data.readers.voc import (VOC_CLASSES, VOCDetectionDataset, check_split_size, load_class_names,
                                      parse_voc_xml, read_image_set)

# An annotation as the devkit writes it (trimmed from VOC2007 000005.xml's structure).
XML_A = """<annotation>
  <folder>VOC2007</folder>
  <filename>000005.jpg</filename>
  <size><width>40</width><height>30</height><depth>3</depth></size>
  <segmented>0</segmented>
  <object><name>chair</name><pose>Rear</pose><truncated>0</truncated><difficult>0</difficult>
    <bndbox><xmin>1</xmin><ymin>2</ymin><xmax>10</xmax><ymax>20</ymax></bndbox></object>
  <object><name>dog</name><pose>Unspecified</pose><truncated>1</truncated><difficult>1</difficult>
    <bndbox><xmin>5</xmin><ymin>6</ymin><xmax>40</xmax><ymax>30</ymax></bndbox></object>
</annotation>"""
# No <difficult> tag (means 0) and a fractional coordinate as in a few VOC2012 files.
XML_B = """<annotation><filename>000007.jpg</filename>
  <size><width>40</width><height>30</height><depth>3</depth></size>
  <object><name>car</name><bndbox><xmin>3.5</xmin><ymin>4</ymin><xmax>12</xmax><ymax>14</ymax></bndbox></object>
</annotation>"""


def _write_voc(root, anns, split="trainval"):
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    for image_id, xml in anns.items():
        with open(os.path.join(root, "Annotations", f"{image_id}.xml"), "w") as f:
            f.write(xml)
        Image.new("RGB", (40, 30), (10, 20, 30)).save(os.path.join(root, "JPEGImages", f"{image_id}.jpg"))
    with open(os.path.join(root, "ImageSets", "Main", f"{split}.txt"), "w") as f:
        f.write("".join(f"{i}\n" for i in anns) + "\n")
    return root


@pytest.fixture
def voc07(tmp_path):
    return _write_voc(str(tmp_path / "VOCdevkit" / "VOC2007"), {"000005": XML_A, "000007": XML_B})


def test_parse_voc_xml_keeps_values_as_written(voc07):
    ann = parse_voc_xml(os.path.join(voc07, "Annotations", "000005.xml"))
    assert ann["filename"] == "000005.jpg" and (ann["width"], ann["height"]) == (40, 30)
    assert [o["name"] for o in ann["objects"]] == ["chair", "dog"]
    assert ann["objects"][0]["bbox"] == (1.0, 2.0, 10.0, 20.0)
    assert [o["difficult"] for o in ann["objects"]] == [False, True]
    assert [o["truncated"] for o in ann["objects"]] == [False, True]
    b = parse_voc_xml(os.path.join(voc07, "Annotations", "000007.xml"))
    assert b["objects"][0]["difficult"] is False and b["objects"][0]["bbox"][0] == 3.5


def test_read_image_set_and_errors(voc07):
    assert read_image_set(voc07, "trainval") == ["000005", "000007"]
    with pytest.raises(FileNotFoundError, match=r"test\.txt.*available: \['trainval'\]"):
        read_image_set(voc07, "test")


def test_dataset_targets_are_zero_based_like_detectron2(voc07):
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        ds = VOCDetectionDataset(voc07, "trainval")
    assert ds.class_names == list(VOC_CLASSES) and len(ds) == 2
    img, t = ds[0]
    assert img.size == (40, 30)
    # xmin-1, ymin-1, xmax, ymax (detectron2 datasets/pascal_voc.py)
    assert torch.equal(t["boxes"], torch.tensor([[0., 1., 10., 20.], [4., 5., 40., 30.]]))
    assert t["labels"].tolist() == [VOC_CLASSES.index("chair") + 1, VOC_CLASSES.index("dog") + 1]
    assert t["difficult"].tolist() == [False, True] and t["image_id"] == "000005"
    _, t = ds[1]
    assert t["boxes"].tolist() == [[2.5, 3.0, 12.0, 14.0]] and t["difficult"].tolist() == [False]


def test_official_split_size_mismatch_is_reported(voc07):
    with pytest.warns(UserWarning, match="lists 2 images, the official release has 5011"):
        ds = VOCDetectionDataset(voc07, "trainval")
    assert "5011" in ds.size_mismatch
    with pytest.raises(ValueError, match="official release has 4952"):
        check_split_size(voc07, "test", 10, strict=True)
    assert check_split_size(voc07, "test", 4952) is None
    assert check_split_size("/x/VOC2012", "trainval", 11540) is None
    assert check_split_size("/x/pasted", "trainval", 3) is None  # not an official year: no check


def test_classes_file_and_unknown_class(tmp_path):
    root = _write_voc(str(tmp_path / "pasted"), {"a": XML_A})
    assert load_class_names(root) == list(VOC_CLASSES)
    with open(os.path.join(root, "classes.txt"), "w") as f:
        f.write("dog\nchair\n")
    ds = VOCDetectionDataset(root, "trainval")
    assert ds.class_names == ["dog", "chair"] and ds.target(0)["labels"].tolist() == [2, 1]
    with pytest.raises(KeyError, match=r"a\.xml: class 'chair' is not one of \['dog'\]"):
        VOCDetectionDataset(root, "trainval", class_names=["dog"]).target(0)


def test_bad_files_name_the_path(tmp_path):
    root = _write_voc(str(tmp_path / "v"), {"a": XML_A.replace("<xmin>1</xmin>", "<xmin>one</xmin>")})
    with pytest.raises(ValueError, match=r"a\.xml: <xmin> is not a number"):
        VOCDetectionDataset(root, "trainval").target(0)
    with pytest.raises(FileNotFoundError, match="VOC root not found"):
        VOCDetectionDataset(str(tmp_path / "nope"), "trainval")
    root = _write_voc(str(tmp_path / "w"), {"b": XML_B})
    Image.new("RGB", (20, 30)).save(os.path.join(root, "JPEGImages", "b.jpg"))
    with pytest.raises(ValueError, match="image is 20x30 but its annotation says 40x30"):
        VOCDetectionDataset(root, "trainval")[0]
