"""tools/bench_train.py's parts: the JPEG generator, the FLOP count rule, and one tiny in-process run
of each pipeline (ours through build_trainer, lightly's BYOL). Not a timing test."""
import os

import torch
from torch import nn

from bench_train import LightlyBYOL, make_jpegs, parse_args, run_lightly, run_ours, train_flops_per_image


def test_make_jpegs_imagenet_like(tmp_path):
    make_jpegs(str(tmp_path), 6)
    from PIL import Image

    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(tmp_path) for f in fs)
    assert len(files) == 6 and len({os.path.dirname(f) for f in files}) == 4  # ImageFolder classes
    for f in files:
        with Image.open(f) as im:
            assert im.format == "JPEG" and 300 <= im.width <= 500 and 250 <= im.height <= 450


class _TwoPart(nn.Module):
    def __init__(self):
        super().__init__()
        self.online = nn.Linear(10, 20, bias=False)  # 200 MACs per sample
        self.target = nn.Linear(10, 5, bias=False)  # 50 MACs per sample
        self.target.requires_grad_(False)

    def forward(self, x):
        return self.online(x).sum() + self.target(x).sum()


def test_flops_rule_trainable_x3_frozen_x1():
    # (3 x 200 + 1 x 50) MACs x 2 FLOPs, per sample
    assert train_flops_per_image(_TwoPart(), (torch.randn(4, 10),), 4) == 2 * (3 * 200 + 50)


def _tiny_args(tmp_path):
    args = parse_args(["--backbone", "resnet10", "--batch-size", "4", "--image-size", "32", "--iters", "1",
                       "--warmup", "1", "--workers", "0", "--opts", "MODEL.BACKBONE.BASE_WIDTH", "8",
                       "BYOL.PROJECTOR_HIDDEN_DIM", "32", "BYOL.PREDICTOR_HIDDEN_DIM", "32"])
    root = tmp_path / "data"
    make_jpegs(str(root), 8)
    return args, str(root)


def test_tiny_runs_of_both_pipelines(tmp_path):
    torch.set_num_threads(1)
    args, root = _tiny_args(tmp_path)
    ours = run_ours(args, root, "fp32")
    lightly = run_lightly(args, root, "fp32")
    for r in (ours, lightly):
        assert r["images_per_s"] > 0 and 0 <= r["data_wait_pct"] <= 100 and r["peak_mem_mb"] > 0
        assert r["precision"] == "fp32" and r["gflops_per_image"] > 0
    assert ours["pipeline"] == "ours" and "batched" in ours["notes"]
    # The same backbone: lightly's heads are 4096-wide (its defaults), ours 32 here, so ours is cheaper.
    assert ours["gflops_per_image"] < lightly["gflops_per_image"]
    assert isinstance(LightlyBYOL(nn.Identity(), 8).backbone_momentum, nn.Identity)


def test_tiny_run_with_the_gpu_backend_on_cpu(tmp_path):
    torch.set_num_threads(1)
    args, root = _tiny_args(tmp_path)
    args.opts = list(args.opts) + ["INPUT.BACKEND", "gpu"]
    res = run_ours(args, root, "fp32")
    assert res["images_per_s"] > 0 and "gpu backend" in res["notes"]
