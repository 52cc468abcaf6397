#!/usr/bin/env python
"""Time training iterations of the dense transfer heads (forward + backward + SGD step) on synthetic
batches of the protocol's shapes, and extrapolate to the paper's schedule.

    python tools/time_dense.py --task segmentation --config-file configs/byol/r50_1000ep.yaml --iters 200
    python tools/time_dense.py --task depth --config-file configs/byol/r50_1000ep.yaml --iters 200

Shapes, batch and schedule come from ``BENCHMARK.SEGMENTATION.*`` / ``BENCHMARK.DEPTH.*`` (the
paper's by default: 16 x 513x513 crops for 30,000 steps; 256 x 304x228 frames for 7,500 steps),
so overrides (``KEY VALUE`` pairs) time a budget run the same way. Data loading is not included
(inputs are random tensors already on the device), so this is the model's speed, an upper bound
for the end-to-end rate that ``tools/benchmark.py`` reports as ``iters_per_s``.
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from _paths import import_methods  # noqa: E402

from ssl_zoo.benchmark.depth.loss import berhu_loss  # noqa: E402
from ssl_zoo.benchmark.depth.model import build_fcrn  # noqa: E402
from ssl_zoo.benchmark.segmentation.model import build_fcn  # noqa: E402
from ssl_zoo.config import load_config  # noqa: E402
from ssl_zoo.utils.env import amp_dtype_from_cfg  # noqa: E402
from ssl_zoo.modeling.backbones.build import build_backbone_from_cfg  # noqa: E402
from ssl_zoo.utils.env import device_from_cfg  # noqa: E402


def _setup(cfg, task: str, device):
    if task == "segmentation":
        c = cfg.BENCHMARK.SEGMENTATION
        model = build_fcn(build_backbone_from_cfg(cfg), c.NUM_CLASSES or 21, c.HEAD_CHANNELS, c.HEAD_DILATION)
        x = torch.randn(c.BATCH_SIZE, 3, c.CROP_SIZE, c.CROP_SIZE, device=device)
        y = torch.randint(0, c.NUM_CLASSES or 21, (c.BATCH_SIZE, c.CROP_SIZE, c.CROP_SIZE), device=device)
        return model, x, y, lambda out, t: F.cross_entropy(out, t, ignore_index=255), c
    c = cfg.BENCHMARK.DEPTH
    model = build_fcrn(build_backbone_from_cfg(cfg), tuple(c.DECODER_CHANNELS))
    x = torch.randn(c.BATCH_SIZE, 3, *c.CROP, device=device)
    y = torch.rand(c.BATCH_SIZE, 1, *c.CROP, device=device) * 9 + 0.5

    def loss(out, t):
        out = F.interpolate(out, size=t.shape[-2:], mode="bilinear", align_corners=False)
        return berhu_loss(out, t, t > 0, c.BERHU_C)
    return model, x, y, loss, c


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, choices=("segmentation", "depth"))
    p.add_argument("--config-file", required=True)
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE pairs")
    args = p.parse_args(argv)
    import_methods()  # method configs (e.g. BYOL's keys) parse
    cfg = load_config(args.config_file, args.opts)
    device = device_from_cfg(cfg)
    amp = amp_dtype_from_cfg(cfg, device)
    model, x, y, loss_fn, c = _setup(cfg, args.task, device)
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=c.WEIGHT_DECAY)

    def step():
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            out = model(x)
        loss = loss_fn(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.iters):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    rate = args.iters / seconds
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"{args.task}: {cfg.MODEL.BACKBONE.NAME} bw{cfg.MODEL.BACKBONE.BASE_WIDTH}, batch {c.BATCH_SIZE}, "
          f"input {tuple(x.shape[-2:])}, amp {amp}, on {name}: {args.iters} iterations in {seconds:.1f} s = "
          f"{rate:.3f} it/s; {c.ITERS} iterations (the configured schedule) would take {c.ITERS / rate / 3600:.2f} h")


if __name__ == "__main__":
    main()
