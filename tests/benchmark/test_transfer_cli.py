"""``tools/benchmark.py --task transfer`` end to end on fixtures: a user's ImageFolder (linear + small
fine-tune), a named dataset in its release layout under DATASETS.ROOT (``--dataset all``: the others
are reported missing), the feature cache, split files, results.json / CSV, and the error line."""
import csv
import glob
import importlib.util
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO_ROOT, "tools", "benchmark.py")
COLOURS = [(220, 30, 30), (30, 220, 30), (30, 30, 220)]


def _image(path, c, rng):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    a = np.clip(np.array(COLOURS[c])[None, None] + rng.normal(0, 30, (20, 24, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(a).save(path)


def _run(env, *args):
    cmd = [sys.executable, TOOL, "--task", "transfer", "--config-file", env.config, "--weights", "random", *args]
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "SSL_ZOO_CACHE": str(env.root / "zoo_cache")})


def _in_process(env, *args):
    """The same command in this process (no interpreter start-up): ``(rows, stdout)``."""
    spec = importlib.util.spec_from_file_location("transfer_benchmark_tool", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    old = os.environ.get("SSL_ZOO_CACHE")
    os.environ["SSL_ZOO_CACHE"] = str(env.root / "zoo_cache")
    try:
        return tool.main(tool.parse_args(["--task", "transfer", "--config-file", env.config, "--weights", "random",
                                          *args]))
    finally:
        os.environ.pop("SSL_ZOO_CACHE") if old is None else os.environ.__setitem__("SSL_ZOO_CACHE", old)


def _ok(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer")
    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("test", 6)):
        for c in range(3):
            for i in range(n):
                _image(str(root / "mine" / split / f"class{c}" / f"{i:02d}.png"), c, rng)
    dtd = root / "datasets" / "dtd"  # DTD's release layout, 3 classes x (4 train, 2 val, 3 test)
    lists = {"train": [], "val": [], "test": []}
    for c, name in enumerate(("banded", "dotted", "zigzagged")):
        for i in range(9):
            _image(str(dtd / "images" / name / f"{name}_{i:04d}.jpg"), c, rng)
            lists["train" if i < 4 else "val" if i < 6 else "test"].append(f"{name}/{name}_{i:04d}.jpg")
    (dtd / "labels").mkdir()
    for s, rows in lists.items():
        (dtd / "labels" / f"{s}1.txt").write_text("\n".join(rows) + "\n")
    config = root / "tiny.yaml"
    config.write_text(f"""
MODEL:
  BACKBONE: {{NAME: "resnet10", BASE_WIDTH: 4, CIFAR_STEM: True}}
INPUT: {{IMAGE_SIZE: 16}}
DATALOADER: {{NUM_WORKERS: 0}}
SOLVER: {{AMP: {{ENABLED: False}}}}
DEVICE: "cpu"
OUTPUT_DIR: "{root / 'out'}"
DATASETS: {{ROOT: "{root / 'datasets'}"}}
BENCHMARK:
  RESULTS_CSV: "{root / 'results.csv'}"
  CACHE_DIR: "{root / 'cache'}"
  TRANSFER:
    SPLIT_DIR: "{root / 'splits'}"
    FINETUNE: {{SMALL_STEPS: 3, SMALL_LRS: [0.01], SMALL_WEIGHT_DECAYS: [0.0, 1.0e-5], BATCH_SIZE: 16}}
""")
    e = types.SimpleNamespace(root=root, config=str(config))
    e.mine = _run(e, "--dataset", str(root / "mine"), "--mode", "both", "--budget", "small")
    e.cache_files = {p: os.path.getmtime(p) for p in glob.glob(str(root / "cache" / "*.pt"))}
    e.mine_again = _in_process(e, "--dataset", str(root / "mine"), "--mode", "linear", "--output-dir", str(root / "again"))
    e.all = _in_process(e, "--dataset", "all", "--output-dir", str(root / "all"))
    e.missing = _run(e, "--dataset", "flowers")
    return e


def test_imagefolder_linear_and_small_finetune(env):
    out = _ok(env.mine)
    assert "BUDGET SMALL" in out and "| linear" in out and "| finetune" in out
    rows = json.load(open(env.root / "out" / "eval" / "transfer_both" / "results.json"))["results"]
    linear, ft = rows
    assert linear["mode"] == "linear:top1" and ft["mode"] == "finetune:top1"
    # Three colours are linearly separable even for random features: every lambda scores 100% on
    # validation, the tie goes to the largest (1e5), and the exact solution there (checked against
    # scikit-learn on these features) still classifies 16 of the 18 test images.
    assert linear["score"] > 85
    assert len(linear["val_score_per_lambda"]) == 45 and linear["train"].endswith("+val(6)")  # 10% of 20 per class
    assert len(ft["val_score_grid"]) == 2 and ft["steps"] == 3 and ft["budget"] == "small"
    assert linear["sklearn_C"] == pytest.approx(1.0 / linear["best_lambda"])
    with open(env.root / "results.csv", newline="") as f:
        modes = [r["mode"] for r in csv.DictReader(f)]
    assert modes[:2] == ["linear:top1", "finetune:top1"]
    assert len(glob.glob(str(env.root / "splits" / "mine-*_seed0.json"))) == 1


def test_second_run_reuses_cached_features_and_split_file(env):
    assert len(env.cache_files) == 3  # train, val, test features of the first run
    assert {p: os.path.getmtime(p) for p in glob.glob(str(env.root / "cache" / "*.pt"))
            if "mine" in os.path.basename(p)} == env.cache_files  # read back, not rewritten
    first = json.load(open(env.root / "out" / "eval" / "transfer_both" / "results.json"))["results"][0]
    again = json.load(open(env.root / "again" / "results.json"))["results"][0]
    assert again["score"] == first["score"] and again["best_lambda"] == first["best_lambda"]


def test_all_runs_present_datasets_and_lists_the_missing(env):
    assert sum(r.get("status") == "missing" for r in env.all) == 11
    rows = json.load(open(env.root / "all" / "results.json"))["results"]  # missing ones are not results
    assert [r["dataset"] for r in rows] == ["DTD (split 1)"]
    assert rows[0]["paper_byol"] == 75.5 and "creators' val (6)" in rows[0]["protocol"]
    assert "dtd train: 12 images, the paper's table has 1880" in rows[0]["split_size_mismatches"]


def test_missing_dataset_is_one_error_line(env):
    assert env.missing.returncode != 0
    err = [line for line in env.missing.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "flowers-102" in err[0] and "setid.mat" in err[0]
