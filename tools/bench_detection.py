#!/usr/bin/env python
"""Time training iterations of the C4 Faster R-CNN (``--task detection``'s model) on synthetic
VOC-sized images, and extrapolate the protocol's schedule (PROTOCOLS.md s.6: 24k iterations).

The model, input scales, RPN / RoI settings and batch come from the config, exactly as
``tools/benchmark.py --task detection`` builds them; images are random (sizes drawn like VOC's,
about 500x375) with 1-4 random boxes each, so no dataset is needed. The first ``--warmup``
iterations (cuDNN autotuning, allocator) are not timed.

Examples:
    # GPU, the protocol's R50-C4 at batch 16 (200 timed iterations; ~24k extrapolated)
    python tools/bench_detection.py --config-file configs/byol/r50_1000ep.yaml --iters 200 DEVICE cuda
    # this CPU, the quickstart backbone at the pasted-CIFAR scale
    python tools/bench_detection.py --config-file configs/detection/pasted_voc_cifar10_r10.yaml --iters 20 \\
        --image-size 160 256
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import torch  # noqa: E402
from _paths import import_methods  # noqa: E402

from ssl_zoo.benchmark.detection.train import detector_from_cfg, build_optimizer, schedule_from_cfg  # noqa: E402
from ssl_zoo.config import load_config  # noqa: E402
from ssl_zoo.utils.env import amp_dtype_from_cfg  # noqa: E402
from ssl_zoo.modeling.backbones.build import build_backbone_from_cfg  # noqa: E402
from ssl_zoo.utils.env import device_from_cfg  # noqa: E402


def synthetic_batch(batch: int, size_range, num_classes: int, gen: torch.Generator):
    """``batch`` random images [3, H, W] (H, W in ``size_range``) with 1-4 boxes each."""
    images, targets = [], []
    for _ in range(batch):
        h, w = (int(v) for v in torch.randint(size_range[0], size_range[1] + 1, (2,), generator=gen))
        images.append(torch.rand(3, h, w, generator=gen))
        n = int(torch.randint(1, 5, (1,), generator=gen))
        xy = torch.rand(n, 2, generator=gen) * torch.tensor([w * 0.6, h * 0.6])
        wh = (0.2 + 0.2 * torch.rand(n, 2, generator=gen)) * torch.tensor([w, h])
        targets.append({"boxes": torch.cat([xy, xy + wh], 1), "labels": torch.randint(1, num_classes + 1, (n,),
                                                                                        generator=gen)})
    return images, targets


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--iters", type=int, default=200, help="timed iterations")
    p.add_argument("--warmup", type=int, default=10, help="untimed iterations first")
    p.add_argument("--num-classes", type=int, default=20)
    p.add_argument("--image-size", type=int, nargs=2, default=(333, 500), metavar=("MIN", "MAX"),
                   help="side lengths of the synthetic images (VOC: mostly 333-500)")
    p.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides: KEY VALUE pairs")
    args = p.parse_args(argv)
    import_methods()  # method configs (BYOL.*) must be known to read a pretraining config
    cfg = load_config(args.config_file, args.opts)
    d = cfg.BENCHMARK.DETECTION
    device = device_from_cfg(cfg)
    amp = amp_dtype_from_cfg(cfg, device)
    model = detector_from_cfg(cfg, build_backbone_from_cfg(cfg), args.num_classes).to(device).train()
    opt = build_optimizer(model, d.BASE_LR, d.MOMENTUM, d.WEIGHT_DECAY, d.WEIGHT_DECAY_NORM)
    gen = torch.Generator().manual_seed(0)
    batches = [synthetic_batch(d.IMS_PER_BATCH, args.image_size, args.num_classes, gen) for _ in range(4)]

    def step(i):
        images, targets = batches[i % len(batches)]
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            losses = model([x.to(device, non_blocking=True) for x in images],
                           [{k: v.to(device) for k, v in t.items()} for t in targets])
        opt.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        opt.step()

    for i in range(args.warmup):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(args.iters):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    rate = args.iters / seconds
    full = schedule_from_cfg(cfg).max_iter
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"{name}: {cfg.MODEL.BACKBONE.NAME} C4 Faster R-CNN, batch {d.IMS_PER_BATCH}, shorter side "
          f"{tuple(d.MIN_SIZE_TRAIN)}, AMP {amp}: {rate:.3f} it/s ({rate * d.IMS_PER_BATCH:.1f} img/s) over "
          f"{args.iters} iterations; {full} iterations would take {full / rate / 3600:.2f} h")
    return {"its_per_s": rate, "images_per_s": rate * d.IMS_PER_BATCH, "schedule_hours": full / rate / 3600}


if __name__ == "__main__":
    main()
