"""``tools/benchmark.py --task segmentation`` end to end on a VOC2012 + SBD fixture in the official
formats (JPEG images, palette SegmentationClass PNGs, SBD ``GTcls`` .mat files, ImageSets lists): the
lr sweep on held-out train_aug images, the final val row, results.json, the saved train_aug list, and
one clear error line for a missing dataset. (The official sizes that ``--dataset voc2012_aug``
enforces are tested with the reader.)"""
import json
import os
import subprocess
import sys

import numpy as np
import scipy.io
from PIL import Image

from ssl_zoo.data.readers.voc_segmentation import voc_palette

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO_ROOT, "tools", "benchmark.py")
COLOURS = {1: (220, 30, 30), 2: (30, 30, 220)}


def _scene(rng, cls, size=24):
    img = rng.integers(100, 140, (size, size, 3)).astype(np.uint8)
    lab = np.zeros((size, size), np.uint8)
    t, l = rng.integers(0, size // 2, 2)
    img[t:t + 10, l:l + 10] = COLOURS[cls]
    lab[t:t + 10, l:l + 10] = cls
    return img, lab


def _write_fixture(root):
    rng = np.random.default_rng(0)
    voc = os.path.join(root, "VOCdevkit", "VOC2012")
    sbd = os.path.join(root, "benchmark_RELEASE", "dataset")
    for d in (os.path.join(voc, "JPEGImages"), os.path.join(voc, "SegmentationClass"),
              os.path.join(voc, "ImageSets", "Segmentation"), os.path.join(sbd, "img"), os.path.join(sbd, "cls")):
        os.makedirs(d)
    ids = {"train": [f"2008_{i:06d}" for i in range(6)], "val": [f"2009_{i:06d}" for i in range(4)],
           "sbd": [f"2010_{i:06d}" for i in range(6)]}
    for split in ("train", "val"):
        for k, i in enumerate(ids[split]):
            img, lab = _scene(rng, 1 + k % 2)
            Image.fromarray(img).save(os.path.join(voc, "JPEGImages", f"{i}.jpg"), quality=95)
            png = Image.fromarray(lab, mode="P")
            png.putpalette(voc_palette())
            png.save(os.path.join(voc, "SegmentationClass", f"{i}.png"))
        with open(os.path.join(voc, "ImageSets", "Segmentation", f"{split}.txt"), "w") as f:
            f.write("\n".join(ids[split]) + "\n")
    for k, i in enumerate(ids["sbd"] + ids["val"][:1]):  # SBD also holds some VOC2012 val images
        img, lab = _scene(rng, 1 + k % 2)
        Image.fromarray(img).save(os.path.join(sbd, "img", f"{i}.jpg"), quality=95)
        scipy.io.savemat(os.path.join(sbd, "cls", f"{i}.mat"), {"GTcls": {"Segmentation": lab}})
    with open(os.path.join(sbd, "train.txt"), "w") as f:
        f.write("\n".join(ids["sbd"][:4] + [ids["val"][0]]) + "\n")  # a VOC val id: must be dropped
    with open(os.path.join(sbd, "val.txt"), "w") as f:
        f.write("\n".join(ids["sbd"][4:]) + "\n")


def _config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(f"""
MODEL:
  BACKBONE: {{NAME: "resnet10", BASE_WIDTH: 4, CIFAR_STEM: True}}
DATALOADER: {{NUM_WORKERS: 0}}
SOLVER: {{AMP: {{ENABLED: False}}}}
DEVICE: "cpu"
OUTPUT_DIR: "{tmp_path / 'out'}"
BENCHMARK:
  RESULTS_CSV: ""
  SEGMENTATION: {{ITERS: 6, SWEEP_ITERS: 3, BATCH_SIZE: 4, CROP_SIZE: 24, HEAD_CHANNELS: 8, LRS: [0.01, 0.1],
                  VAL_SIZE: 2, NUM_CLASSES: 21}}
""")
    return str(path)


def test_segmentation_cli_end_to_end(tmp_path):
    _write_fixture(str(tmp_path / "data"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SSL_ZOO_DATASETS": str(tmp_path / "data")}
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, TOOL, "--task", "segmentation", "--dataset", str(tmp_path / "data"),
                        "--weights", "random", "--config-file", _config(tmp_path), "--output-dir", str(out)],
                       cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())["results"]
    assert [row["mode"] for row in results] == ["lr sweep", "lr sweep", "final"]
    sweep, final = results[:2], results[2]
    # train_aug = 6 VOC train + 6 SBD (the VOC val id listed by SBD dropped) = 12; 2 held out for the sweep
    assert all(row["split"] == "train_aug held-out (2 of 12)" and row["iters"] == 3 for row in sweep)
    best = max(sweep, key=lambda row: (row["miou"], -row["lr"]))["lr"]
    assert final["lr"] == best and final["split"] == "val (4)" and final["train_images"] == 12
    assert 0 <= final["miou"] <= 100 and len(final["iou_per_class"]) == 21 and final["output_stride"] == 4
    assert final["protocol"].startswith("budget: ITERS=6 (paper 30000)")
    lines = (out / "train_aug.txt").read_text().splitlines()
    assert len(lines) == 12 and sum(line.endswith("sbd_mat") for line in lines) == 6
    assert "schedule: budget" in r.stdout and "| final" in r.stdout
    r = subprocess.run([sys.executable, TOOL, "--task", "segmentation", "--dataset", str(tmp_path / "nowhere"),
                        "--weights", "random", "--config-file", _config(tmp_path), "--output-dir", str(out)],
                       cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and r.stderr.strip().splitlines()[-1].startswith("error: --dataset")
