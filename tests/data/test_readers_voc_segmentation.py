"""VOC2012 SegmentationClass / SBD cls .mat readers and the train_aug assembly, on tiny fixtures
written in the official formats (palette PNGs via PIL ``putpalette``, SBD's ``GTcls`` struct via
``scipy.io.savemat``)."""
import os

import numpy as np
import pytest
import scipy.io
from PIL import Image

from ssl_zoo.data.readers import voc_segmentation as R


def _palette_png(path, label):
    im = Image.fromarray(label.astype(np.uint8), mode="P")
    im.putpalette(R.voc_palette())
    im.save(path)


def _write_voc(root, train, val, h=6, w=8, classes=None):
    voc = os.path.join(root, "VOCdevkit", "VOC2012")
    for d in ("JPEGImages", "SegmentationClass", os.path.join("ImageSets", "Segmentation")):
        os.makedirs(os.path.join(voc, d), exist_ok=True)
    for k, i in enumerate(train + val):
        Image.fromarray(np.full((h, w, 3), 10 * k, np.uint8)).save(os.path.join(voc, "JPEGImages", f"{i}.jpg"))
        lab = np.zeros((h, w), np.uint8)
        lab[:, : w // 2] = k % 20 + 1
        lab[0, :] = 255  # a void boundary row
        _palette_png(os.path.join(voc, "SegmentationClass", f"{i}.png"), lab)
    for name, ids in (("train", train), ("val", val)):
        with open(os.path.join(voc, "ImageSets", "Segmentation", f"{name}.txt"), "w") as f:
            f.write("\n".join(ids) + "\n")
    if classes:
        with open(os.path.join(voc, "classes.txt"), "w") as f:
            f.write("\n".join(classes) + "\n")
    return voc


def _sbd_mat(path, seg):
    scipy.io.savemat(path, {"GTcls": {"Segmentation": seg.astype(np.uint8), "Boundaries": np.zeros((1, 1)),
                                      "CategoriesPresent": np.unique(seg[seg > 0]).astype(np.uint8)}})


def _write_sbd(root, train, val, h=6, w=8):
    sbd = os.path.join(root, "benchmark_RELEASE", "dataset")
    os.makedirs(os.path.join(sbd, "img"))
    os.makedirs(os.path.join(sbd, "cls"))
    for i in train + val:
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(os.path.join(sbd, "img", f"{i}.jpg"))
        seg = np.zeros((h, w), np.uint8)
        seg[h // 2:, :] = 7
        _sbd_mat(os.path.join(sbd, "cls", f"{i}.mat"), seg)
    for name, ids in (("train", train), ("val", val)):
        with open(os.path.join(sbd, f"{name}.txt"), "w") as f:
            f.write("\n".join(ids) + "\n")
    return sbd


def test_palette_png_reads_class_indices_not_colours(tmp_path):
    lab = np.array([[0, 3, 255], [15, 20, 0]], np.uint8)
    _palette_png(tmp_path / "a.png", lab)
    np.testing.assert_array_equal(R.read_voc_label(str(tmp_path / "a.png")), lab)
    Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(tmp_path / "rgb.png")  # a colour rendering
    with pytest.raises(ValueError, match="mode RGB"):
        R.read_voc_label(str(tmp_path / "rgb.png"))


def test_voc_palette_matches_the_devkit_colours():
    pal = R.voc_palette()
    # background, aeroplane, bicycle
    assert pal[:3] == [0, 0, 0] and pal[3:6] == [128, 0, 0] and pal[6:9] == [0, 128, 0]
    assert pal[15 * 3:16 * 3] == [192, 128, 128]  # person
    assert pal[255 * 3:] == [224, 224, 192]  # void


def test_sbd_mat_struct_is_read(tmp_path):
    seg = np.arange(12, dtype=np.uint8).reshape(3, 4)
    _sbd_mat(tmp_path / "x.mat", seg)
    np.testing.assert_array_equal(R.read_sbd_label(str(tmp_path / "x.mat")), seg)
    scipy.io.savemat(tmp_path / "bad.mat", {"other": np.zeros(2)})
    with pytest.raises(KeyError, match="GTcls"):
        R.read_sbd_label(str(tmp_path / "bad.mat"))


def test_train_aug_is_sbd_train_val_plus_voc_train_minus_voc_val(tmp_path):
    voc = _write_voc(str(tmp_path), train=["a", "b", "c"], val=["d", "g"])
    sbd = _write_sbd(str(tmp_path), train=["b", "d", "e"], val=["f", "g"])
    assert R.find_voc2012(str(tmp_path)) == voc and R.find_sbd(str(tmp_path)) == sbd
    samples, sizes = R.assemble_train_aug(voc, sbd)
    # {a,b,c} u {b,d,e} u {f,g} minus {d,g} = {a,b,c,e,f}; b keeps VOC's PNG
    assert [s.id for s in samples] == ["a", "b", "c", "e", "f"]
    assert {s.id: s.label_format for s in samples} == {"a": "png", "b": "png", "c": "png", "e": "sbd_mat",
                                                       "f": "sbd_mat"}
    assert sizes == {"voc_train": 3, "voc_val": 2, "sbd_train": 3, "sbd_val": 2, "train_aug": 5}
    with pytest.raises(ValueError, match="train_aug: 5 images \\(official 10582\\)"):
        R.check_official_sizes(sizes)
    R.check_official_sizes(dict(R.OFFICIAL_SIZES))
    R.save_sample_list(samples, str(tmp_path / "out" / "train_aug.txt"))
    lines = (tmp_path / "out" / "train_aug.txt").read_text().splitlines()
    assert len(lines) == 5 and lines[3].split()[0] == "e" and lines[3].endswith("sbd_mat")
    ds = R.SegmentationDataset(samples)
    image, label = ds[3]
    assert image.shape == (6, 8, 3) and set(np.unique(label)) == {0, 7}
    image, label = ds[0]
    assert label[0].tolist() == [255] * 8 and set(np.unique(label[1:])) == {0, 1}


def test_without_sbd_train_aug_is_voc_train(tmp_path):
    voc = _write_voc(str(tmp_path), train=["a", "b"], val=["c"], classes=["cat", "dog"])
    samples, sizes = R.assemble_train_aug(voc, None)
    assert [s.id for s in samples] == ["a", "b"] and sizes["train_aug"] == 2
    assert R.num_segmentation_classes(voc) == 3  # classes.txt + background
    assert [s.id for s in R.voc_split_samples(voc, "val")] == ["c"]


def test_missing_files_and_mismatched_label_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no VOC2012 segmentation data"):
        R.find_voc2012(str(tmp_path))
    voc = _write_voc(str(tmp_path), train=["a"], val=["b"])
    assert R.num_segmentation_classes(voc) == 21
    _palette_png(os.path.join(voc, "SegmentationClass", "a.png"), np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match="does not match image"):
        R.SegmentationDataset(R.voc_split_samples(voc, "train"))[0]
    os.remove(os.path.join(voc, "JPEGImages", "b.jpg"))
    with pytest.raises(FileNotFoundError, match="1 listed files are missing"):
        R.voc_split_samples(voc, "val")
