"""``tools/benchmark.py`` end to end: a tiny ImageFolder (16 px PNGs), a ResNet-10 at base width 4
on the CPU, kNN / linear (both modes) / semi-supervised runs in subprocesses, their printed
tables, ``results.json`` files and the results CSV that every run appends to."""
import csv
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from ssl_zoo.config import load_config
from ssl_zoo.benchmark import eval_setup as ES, finetune as FT, knn as KNN, linear as LIN
from ssl_zoo.modeling.backbones.build import build_backbone

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO_ROOT, "tools", "benchmark.py")
COLOURS = [(220, 30, 30), (30, 220, 30), (30, 30, 220)]


def _write_split(root, per_class, rng):
    for c, colour in enumerate(COLOURS):
        os.makedirs(os.path.join(root, f"class{c}"), exist_ok=True)
        for i in range(per_class):
            a = np.clip(np.array(colour)[None, None] + rng.normal(0, 30, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(os.path.join(root, f"class{c}", f"{os.path.basename(root)}_{c}_{i:02d}.png"))


def _run(env, *args, csv_path=None):
    cmd = [sys.executable, TOOL, "--config-file", env.config, *args]
    if csv_path:
        cmd += ["BENCHMARK.RESULTS_CSV", csv_path]
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def _csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    rng = np.random.default_rng(0)
    _write_split(str(root / "data" / "train"), 20, rng)
    _write_split(str(root / "data" / "test"), 10, rng)
    config = root / "tiny.yaml"
    config.write_text(f"""
MODEL:
  BACKBONE:
    NAME: "resnet10"
    BASE_WIDTH: 4
    CIFAR_STEM: True
INPUT:
  IMAGE_SIZE: 16
DATALOADER:
  NUM_WORKERS: 0
SOLVER:
  AMP:
    ENABLED: False
DEVICE: "cpu"
OUTPUT_DIR: "{root / 'out'}"
BENCHMARK:
  TRAIN: "{root / 'data' / 'train'}"
  TEST: "{root / 'data' / 'test'}"
  RESULTS_CSV: "{root / 'results.csv'}"
  CACHE_DIR: "{root / 'cache'}"
  LINEAR:
    EPOCHS: 2
    FAST_AUG_COPIES: 1
  SEMI:
    EPOCHS: [1]
    LRS: [0.01, 0.1]
""")
    # a tools/train_net.py checkpoint: online backbone, BYOL target copy, a projector
    online = build_backbone("resnet10", base_width=4, cifar_stem=True).state_dict()
    with torch.random.fork_rng():
        torch.manual_seed(123)
        target = build_backbone("resnet10", base_width=4, cifar_stem=True).state_dict()
    ckpt = root / "model_final.pth"
    torch.save({"model": {**{f"backbone.{k}": v for k, v in online.items()},
                          **{f"target_backbone.{k}": v for k, v in target.items()},
                          "projector.net.0.weight": torch.randn(8, 32)},
                "iteration": 100}, str(ckpt))
    e = types.SimpleNamespace(root=root, config=str(config), ckpt=str(ckpt), online=online,
                              csv=str(root / "results.csv"), out=root / "out" / "eval")
    # three runs appending to one CSV: kNN (checkpoint), linear fast + faithful (random), semi 10% (checkpoint)
    e.knn = _run(e, "--task", "knn", "--weights", e.ckpt)
    e.rows_after = [len(_csv_rows(e.csv)) if os.path.isfile(e.csv) else 0]
    e.linear = _run(e, "--task", "linear", "--mode", "both", "--weights", "random")
    e.rows_after.append(len(_csv_rows(e.csv)) if os.path.isfile(e.csv) else 0)
    e.semi = _run(e, "--task", "semi", "--fraction", "10", "--weights", e.ckpt)
    e.rows_after.append(len(_csv_rows(e.csv)) if os.path.isfile(e.csv) else 0)
    return e


def _ok(proc):
    assert proc.returncode == 0, (f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\n"
                                  f"stderr:\n{proc.stderr[-3000:]}")
    return proc.stdout


def _results(path):
    with open(path) as f:
        return json.load(f)


def test_knn_table_and_results(env):
    out = _ok(env.knn)
    assert f"weights: {env.ckpt}" in out
    assert "validation: 6 images held out from train" in out  # 10% of 20 per class
    header = next(line for line in out.splitlines() if line.startswith("| task"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["task", "mode", "top1", "top5", "seconds"]
    assert any(line.startswith("| knn") and "k=200" in line for line in out.splitlines())
    res = _results(env.out / "knn" / "results.json")
    assert res["meta"]["weights"] == env.ckpt and res["meta"]["backbone"] == "resnet10 w1 bw4"
    assert all(r["train"].endswith(os.path.join("data", "train")) for r in res["results"])  # what was evaluated, per row
    assert [r["mode"] for r in res["results"]] == ["k=200", "k=20"]
    for r in res["results"]:
        assert r["task"] == "knn" and 50 < r["top1"] <= 100 and r["top5"] == 100.0  # 3 colour classes


def test_knn_cli_equals_library_with_online_weights(env):
    """The numbers the CLI printed are the library's on the checkpoint's online (not target) backbone."""
    cfg = load_config(env.config, [])
    setup = ES.build_eval_setup(cfg, env.ckpt)
    for k, v in setup.backbone.state_dict().items():
        assert torch.equal(v, env.online[k]), k
    rows = KNN.run_knn(setup, ks=(200, 20))
    res = _results(env.out / "knn" / "results.json")["results"]
    assert [r["top1"] for r in rows] == pytest.approx([r["top1"] for r in res])


def test_linear_both_table_and_results(env):
    out = _ok(env.linear)
    assert "weights: random init" in out
    header = next(line for line in out.splitlines() if line.startswith("| task"))
    assert "speedup_vs_faithful" in header and "top1_minus_faithful" in header and "best_lr" in header
    res = _results(env.out / "linear_both" / "results.json")["results"]
    assert [(r["task"], r["mode"]) for r in res] == [("linear", "faithful"), ("linear", "fast")]
    for r in res:
        assert 0 <= r["top1"] <= 100 and r["epochs"] == 2
        assert set(r["val_top1_per_lr"]) == {"0.4", "0.3", "0.2", "0.1", "0.05"}
        assert r["best_lr"] == max((0.4, 0.3, 0.2, 0.1, 0.05), key=lambda lr: r["val_top1_per_lr"][str(lr)])
    assert res[1]["top1_minus_faithful"] == pytest.approx(res[1]["top1"] - res[0]["top1"])
    assert res[1]["speedup_vs_faithful"] > 0 and res[1]["aug_copies"] == 1
    assert len(list((env.root / "cache").glob("linear-*-k1-s0.pt"))) == 1  # the fast mode's feature cache


def test_semi_table_and_results(env):
    out = _ok(env.semi)
    assert any(line.startswith("| semi") and "10%" in line for line in out.splitlines())
    res = _results(env.out / "semi_10pct" / "results.json")
    (r,) = res["results"]
    assert r["task"] == "semi" and r["mode"] == "10%" and r["best_epochs"] == 1 and r["best_lr"] in (0.01, 0.1)
    assert r["labelled_images"] == 6  # 10% of the 18 non-validation images of each class
    assert set(r["val_top1_grid"]) == {"lr=0.01,ep=1", "lr=0.1,ep=1"}
    assert res["meta"]["weights"] == env.ckpt


def test_csv_gets_one_row_per_result_across_runs(env):
    for p in (env.knn, env.linear, env.semi):
        _ok(p)
    assert env.rows_after == [2, 4, 5]
    rows = _csv_rows(env.csv)
    assert [(r["task"], r["mode"]) for r in rows] == [("knn", "k=200"), ("knn", "k=20"), ("linear", "faithful"),
                                                      ("linear", "fast"), ("semi", "10%")]
    assert [r["weights"] for r in rows] == [env.ckpt] * 2 + ["random init"] * 2 + [env.ckpt]
    assert rows[-1]["best_epochs"] == "1" and rows[2]["best_lr"] != "" and all(float(r["top1"]) >= 0 for r in rows)
    assert rows[0]["output_dir"] == str(env.out / "knn") and rows[-1]["backbone"] == "resnet10 w1 bw4"


def test_bad_weights_path_fails_naming_it(env, tmp_path):
    missing = str(tmp_path / "no_such_dir" / "model_final.pth")
    bad_csv = str(tmp_path / "bad.csv")
    proc = _run(env, "--task", "knn", "--weights", missing, "--output-dir", str(tmp_path / "bad"), csv_path=bad_csv)
    assert proc.returncode != 0
    assert missing in proc.stderr + proc.stdout
    assert not os.path.exists(bad_csv) and not os.path.exists(tmp_path / "bad" / "results.json")
