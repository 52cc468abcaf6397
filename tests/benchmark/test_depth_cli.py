"""``tools/benchmark.py --task depth`` end to end on an NYU v2 fixture in the official formats
(``nyu_depth_v2_labeled.mat`` as MATLAB v7.3 / HDF5 with column-major arrays, ``splits.mat`` as
MATLAB v5 with 1-based indices), from a checkpoint file: training with berHu, the metrics row,
the schedule named as a budget, and one clear error line for a wrong official size."""
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import scipy.io
import torch

from ssl_zoo.modeling.backbones.build import build_backbone

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO_ROOT, "tools", "benchmark.py")


def _write_nyu(folder, n=5, h=48, w=64):
    os.makedirs(folder)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    depth = np.broadcast_to(np.linspace(1, 4, h, dtype=np.float32)[None, :, None], (n, h, w)).copy()
    depth[:, :6] = 0  # no measurement: rows 4, 5 fall inside the evaluated window
    with h5py.File(os.path.join(folder, "nyu_depth_v2_labeled.mat"), "w", userblock_size=512) as f:
        f["images"] = rgb.transpose(0, 3, 2, 1)  # MATLAB's H x W x 3 x N, column-major
        f["depths"] = depth.transpose(0, 2, 1)
    scipy.io.savemat(os.path.join(folder, "splits.mat"), {"trainNdxs": np.array([[1], [2], [4]], float),
                                                          "testNdxs": np.array([[3], [5]], float)})


def test_depth_cli_end_to_end(tmp_path):
    _write_nyu(str(tmp_path / "nyu_depth_v2"))
    config = tmp_path / "tiny.yaml"
    config.write_text(f"""
MODEL:
  BACKBONE: {{NAME: "resnet10", BASE_WIDTH: 4, CIFAR_STEM: True}}
DATALOADER: {{NUM_WORKERS: 0}}
SOLVER: {{AMP: {{ENABLED: False}}}}
DEVICE: "cpu"
OUTPUT_DIR: "{tmp_path / 'out'}"
BENCHMARK:
  RESULTS_CSV: ""
  DEPTH: {{ITERS: 4, BATCH_SIZE: 2, BASE_LR: 0.01, CROP: [20, 28]}}
""")
    ckpt = tmp_path / "model_final.pth"
    backbone = build_backbone("resnet10", base_width=4, cifar_stem=True)
    torch.save({"model": {f"backbone.{k}": v for k, v in backbone.state_dict().items()}}, ckpt)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SSL_ZOO_DATASETS": str(tmp_path)}
    cmd = [sys.executable, TOOL, "--task", "depth", "--weights", str(ckpt), "--config-file", str(config),
           "--output-dir", str(tmp_path / "run")]
    r = subprocess.run(cmd + ["--dataset", str(tmp_path / "nyu_depth_v2")], cwd=REPO_ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    (row,) = json.loads((tmp_path / "run" / "results.json").read_text())["results"]
    assert row["split"] == "test (2)" and row["train_frames"] == 3 and row["decoder_channels"] == [8, 4]
    # test targets: the full-resolution 40x56 window (rows 4..43) of the 2 test frames, minus rows 4, 5
    assert row["output_stride"] == 2 and row["pixels"] == 2 * 38 * 56
    for key in ("delta1", "delta2", "delta3"):
        assert 0 <= row[key] <= 100
    assert row["delta1"] <= row["delta2"] <= row["delta3"] and row["rms"] > 0 and row["rel"] > 0
    assert row["protocol"].startswith("budget: ITERS=4 (paper 7500), BATCH_SIZE=2 (paper 256)")
    assert str(ckpt) in row["weights"]
    r = subprocess.run(cmd + ["--dataset", "nyuv2"], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode != 0 and "does not match the official NYU v2 labeled release" in r.stderr.splitlines()[-1]
