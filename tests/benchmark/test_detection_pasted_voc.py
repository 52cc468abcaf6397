"""tools/make_pasted_voc.py: the pasted-CIFAR set in VOC layout, read back with the VOC reader."""
import io
import os
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import make_pasted_voc
from ssl_zoo.data.readers.voc import VOCDetectionDataset, read_image_set


def _cifar_zip(path, split, per_class, classes=("cat", "dog", "ship"), seed=0):
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w") as z:
        for c in classes:
            for i in range(per_class):
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "JPEG")
                z.writestr(f"{split}/{c}/{i:04d}.jpg", buf.getvalue())
    return str(path)


@pytest.fixture(scope="module")
def zips(tmp_path_factory):
    d = tmp_path_factory.mktemp("cifar")
    return _cifar_zip(d / "train.zip", "train", 12), _cifar_zip(d / "test.zip", "test", 6, seed=1)


def _build(out, zips, *extra):
    return make_pasted_voc.main(["--out", str(out), "--cifar-zip", zips[0], "--cifar-zip", zips[1],
                                 "--num-train", "4", "--num-val", "2", "--num-test", "3", "--canvas-min", "128",
                                 "--canvas-max", "144", "--seed", "3", *extra])


def test_layout_boxes_masks_and_splits(tmp_path, zips):
    out = tmp_path / "VOC2007"
    assert _build(out, zips) == 0
    assert (out / "classes.txt").read_text().split() == ["cat", "dog", "ship"]
    train, val, test = (read_image_set(str(out), s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (4, 2, 3)
    assert read_image_set(str(out), "trainval") == train + val
    assert read_image_set(str(out), "trainval", task="Segmentation") == train + val
    assert not set(train + val) & set(test)
    ds = VOCDetectionDataset(str(out), "trainval")
    for i in range(len(ds)):
        img, t = ds[i]
        w, h = img.size
        assert 128 <= w <= 144 and 128 <= h <= 144 and len(t["labels"]) >= 1
        mask = np.array(Image.open(out / "SegmentationClass" / f"{t['image_id']}.png"))
        assert Image.open(out / "SegmentationClass" / f"{t['image_id']}.png").mode == "P"
        for box, label in zip(t["boxes"].round().long().tolist(), t["labels"].tolist()):
            x0, y0, x1, y1 = box
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            assert 64 * 0.5 <= max(x1 - x0, y1 - y0) <= 128  # 2-4x of 32 px (visible part >= half)
            region = mask[y0:y1, x0:x1]
            # the visible box is tight: its border rows/columns hold the object's label
            assert (region[0] == label).any() and (region[-1] == label).any()
            assert (region[:, 0] == label).any() and (region[:, -1] == label).any()
        assert set(np.unique(mask)) <= {0} | set(t["labels"].tolist())
    # per-class lists as the devkit: 1 when present
    lines = dict(l.split() for l in (out / "ImageSets" / "Main" / "cat_trainval.txt").read_text().splitlines())
    for i in range(len(ds)):
        t = ds.target(i)
        has = any(l == 1 and not d for l, d in zip(t["labels"].tolist(), t["difficult"].tolist()))
        assert (lines[t["image_id"]] == "1") == has


def test_test_objects_come_from_test_images_and_none_repeats(tmp_path, zips):
    out = tmp_path / "VOC2007"
    _build(out, zips)
    rows = [l.split("\t") for l in (out / "sources.tsv").read_text().splitlines()[1:]]
    test = set(read_image_set(str(out), "test"))
    for image_id, _, split, src in rows:
        assert split == ("test" if image_id in test else "train")
        assert src.startswith("test.zip:test/" if image_id in test else "train.zip:train/")
    assert len({r[3] for r in rows}) == len(rows)


def test_deterministic_palette_and_errors(tmp_path, zips, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    _build(a, zips), _build(b, zips)
    for sub in ("Annotations/000001.xml", "ImageSets/Main/test.txt", "SegmentationClass/000002.png"):
        assert (a / sub).read_bytes() == (b / sub).read_bytes()
    # VOClabelcolormap.m: 1 aeroplane (128,0,0), 2 (0,128,0), 3 (128,128,0), 15 person (192,128,128)
    pal = make_pasted_voc.voc_palette()
    assert [tuple(pal[3 * i:3 * i + 3]) for i in (0, 1, 2, 3, 15)] == \
        [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (192, 128, 128)]
    assert Image.open(a / "SegmentationClass" / "000001.png").getpalette()[:6] == [0, 0, 0, 128, 0, 0]
    assert _build(a, zips) == 2 and "exists and is not empty" in capsys.readouterr().err
    assert make_pasted_voc.main(["--out", str(tmp_path / "c"), "--cifar-zip", str(tmp_path / "no.zip")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert _build(tmp_path / "d", zips, "--num-test", "40") == 2
    assert "not enough CIFAR test images" in capsys.readouterr().err and not (tmp_path / "d").exists()
