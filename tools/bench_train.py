#!/usr/bin/env python
"""End-to-end pretraining throughput of a config, side by side with lightly's BYOL pipeline.

Each run trains for ``--warmup`` untimed + ``--iters`` timed steps on ImageNet-like JPEGs
generated on the fly (random sizes around 400x350, smooth colour fields + texture, quality 90,
in an ImageFolder tree), and reports:

* images/s: one image = all its views (BYOL: two 224 px views), per whole step;
* data wait: % of the step time blocked in ``next(loader)`` (the workers did not keep up),
  and, for ours, % spent in ``batch_transform`` on the main process (the batched / gpu
  augmentation: host time, which on a GPU is only the launch time);
* peak memory: the main process' max RSS on the CPU, ``torch.cuda.max_memory_allocated`` on CUDA;
* MFU: model FLOPs/s over the device peak. FLOPs per image come from fvcore's
  ``FlopCountAnalysis`` of one forward (a multiply-add counts 2 FLOPs), by top-level module:
  trainable modules x 3 (forward + backward), frozen ones (BYOL's target) x 1. The peak is a
  MEASURED dense matmul (n = 2048 on CPU, 8192 on CUDA) in the run's dtype, not a datasheet.

Pipelines:

* ``ours``: ``ssl_zoo.engine.defaults.build_trainer(cfg)`` exactly as ``tools/train_net.py``
  builds it (config's INPUT.BACKEND, AMP, CHANNELS_LAST, MODEL.COMPILE, LARS, the method's EMA
  hook), driven step by step without checkpoints / loggers / monitors.
* ``lightly``: lightly's BYOL as in its examples: ``BYOLProjectionHead``, ``BYOLPredictionHead``,
  ``NegativeCosineSimilarity``, ``update_momentum`` with ``cosine_schedule``, lightly's ``LARS``,
  ``BYOLTransform`` in DataLoader workers (torchvision ``ImageFolder``), on the SAME backbone
  module as ours (built from the config) and the same batch, workers and image size.

Precisions: ``fp32``; ``bf16`` = bf16 autocast + channels_last. ``ours`` runs at the config's
default on the device (the ImageNet configs: bf16 on CUDA, fp32 on CPU) and at the other
precision; lightly at its default fp32 and at bf16 (equal-precision comparison). bf16 runs are
skipped on CPUs without native bf16. Every run is its own subprocess (clean peak memory).

Examples:
    python tools/bench_train.py                                  # CPU: ResNet-18, 112 px, batch 8 (~3 min)
    python tools/bench_train.py --device cuda --backbone resnet50 --batch-size 256 --iters 20 --warmup 5
    python tools/bench_train.py --device cuda --opts INPUT.BACKEND gpu MODEL.COMPILE True
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from tabulate import tabulate  # noqa: E402
from torch import nn  # noqa: E402

from _paths import import_methods  # noqa: E402
from ssl_zoo.config import load_config  # noqa: E402
from ssl_zoo.engine.defaults import build_trainer  # noqa: E402
from ssl_zoo.utils.env import _cpu_has_bf16, amp_dtype_from_cfg, cpu_name  # noqa: E402
from ssl_zoo.engine.hooks import LRScheduler  # noqa: E402
from ssl_zoo.modeling.backbones.build import build_backbone_from_cfg  # noqa: E402
from ssl_zoo.utils.file_io import atomic_write  # noqa: E402

DEFAULT_CONFIG = "configs/byol/r50_300ep.yaml"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", default=DEFAULT_CONFIG, help="pretraining config (ours)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--backbone", default=None, help="MODEL.BACKBONE.NAME override (CPU default: resnet18)")
    p.add_argument("--batch-size", type=int, default=None, help="images per step (CPU default 8, CUDA 256)")
    p.add_argument("--image-size", type=int, default=None, help="view side (CPU default 112, CUDA 224)")
    p.add_argument("--iters", type=int, default=None, help="timed steps (CPU default 2, CUDA 20)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (CPU default 1, CUDA 5)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: CPU count)")
    p.add_argument("--num-images", type=int, default=0, help="JPEGs to generate (default 2 steps' worth, >= 64)")
    p.add_argument("--pipelines", default="ours,lightly")
    p.add_argument("--repeats", type=int, default=1, help="run the whole plan N times, interleaved, and keep each "
                   "row's fastest run (on a shared machine other processes only ever slow a run down)")
    p.add_argument("--json", default="", help="also write the results here")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE config overrides (ours)")
    p.add_argument("--run", default="", help=argparse.SUPPRESS)  # internal: "<pipeline>:<precision>:<data>:<out>"
    args = p.parse_args(argv)
    cuda = args.device == "cuda"
    args.backbone = args.backbone or (None if cuda else "resnet18")
    args.batch_size = args.batch_size or (256 if cuda else 8)
    args.image_size = args.image_size or (224 if cuda else 112)
    args.iters = args.iters if args.iters is not None else (20 if cuda else 2)
    args.warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    args.workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    return args


# ---------------------------------------------------------------------------- data
def make_jpegs(root: str, n: int, seed: int = 0, classes: int = 4) -> None:
    """n ImageNet-like JPEGs (W ~ U[300, 500], H ~ U[250, 450]) in root/class_k/*.jpg."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        w, h = int(rng.integers(300, 501)), int(rng.integers(250, 451))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        f = rng.uniform(0.005, 0.05, size=(3, 2))
        ph = rng.uniform(0, 6.3, size=3)
        img = np.stack([0.5 + 0.4 * np.sin(f[c, 0] * xx + f[c, 1] * yy + ph[c]) for c in range(3)], axis=-1)
        img += rng.normal(0, 0.06, size=img.shape).astype(np.float32)  # texture: realistic JPEG entropy
        d = os.path.join(root, f"class_{i % classes}")
        os.makedirs(d, exist_ok=True)
        Image.fromarray((img.clip(0, 1) * 255).astype(np.uint8)).save(os.path.join(d, f"{i:05d}.jpg"), quality=90)


# ---------------------------------------------------------------------------- FLOPs, peak
def train_flops_per_image(model: nn.Module, forward_args: tuple, batch: int) -> float:
    """Training FLOPs per image: fvcore MACs x 2, trainable top-level modules x 3, frozen x 1."""
    from fvcore.nn import FlopCountAnalysis

    probe = copy.deepcopy(model).eval()
    probe.__dict__.pop("forward", None)  # MODEL.COMPILE's wrapper: count the plain module's forward
    analysis = FlopCountAnalysis(probe, forward_args).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    per_module = analysis.by_module()
    total = 0.0
    for name, child in probe.named_children():
        trainable = any(p.requires_grad for p in child.parameters())
        total += per_module.get(name, 0) * (3 if trainable else 1)
    return 2.0 * total / batch


def matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    """Measured dense matmul FLOPs/s (best of 5) in ``dtype``: the MFU denominator."""
    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(6):
        _sync(device)
        t = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ---------------------------------------------------------------------------- ours
class _Timed:
    """Wraps the loader iterator and batch_transform, accumulating their host time."""

    def __init__(self, data) -> None:
        self.iterator, self.transform = data.iterator, data.batch_transform
        self.wait = self.augment = 0.0

    def next(self):
        t = time.perf_counter()
        batch = next(self.iterator)
        self.wait += time.perf_counter() - t
        return batch

    def batch_transform(self, batch, it):
        t = time.perf_counter()
        out = self.transform(batch, it)
        self.augment += time.perf_counter() - t
        return out


def ours_cfg(args, data_root: str, precision: Optional[str], out_dir: str):
    import_methods()
    cfg = load_config(args.config_file, list(args.opts))
    cfg.DATASETS.TRAIN, cfg.DATASETS.KNN_TRAIN, cfg.DATASETS.KNN_TEST = data_root, "", ""
    cfg.SOLVER.IMS_PER_BATCH = args.batch_size
    cfg.SOLVER.MAX_ITER = args.warmup + args.iters
    cfg.SOLVER.WARMUP_ITERS = 1
    cfg.INPUT.IMAGE_SIZE = args.image_size
    cfg.DATALOADER.NUM_WORKERS = args.workers
    cfg.DEVICE = args.device
    cfg.OUTPUT_DIR = out_dir
    if args.backbone:
        cfg.MODEL.BACKBONE.NAME = args.backbone
    if "BYOL" in cfg:
        cfg.BYOL.ONLINE_CLASSIFIER_CLASSES = 0  # the same model as lightly's (no monitoring classifier)
    if precision is not None:  # force fp32 / bf16 on this device
        bf16 = precision == "bf16"
        cfg.SOLVER.AMP.ENABLED, cfg.SOLVER.AMP.DTYPE, cfg.SOLVER.AMP.DEVICES = bf16, "bfloat16", (args.device,)
        cfg.MODEL.CHANNELS_LAST, cfg.MODEL.CHANNELS_LAST_DEVICES = bf16, (args.device,)
    return cfg


def run_ours(args, data_root: str, precision: Optional[str]) -> Dict:
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as out_dir:
        cfg = ours_cfg(args, data_root, precision, out_dir)
        trainer = build_trainer(cfg)
        model = trainer.unwrapped_model
        trainer.hooks = [h for h in trainer.hooks if isinstance(h, LRScheduler)]  # the EMA runs inside the step
        timed = _Timed(trainer.data)
        trainer.data.iterator = iter(timed.next, None)
        trainer.data.batch_transform = timed.batch_transform
        dtype = trainer.amp_dtype
        probe_views = [torch.randn(2, 3, args.image_size, args.image_size, device=device) for _ in range(2)]
        flops = train_flops_per_image(model, (probe_views,), 2)  # 2 images, 2 views each
        elapsed = _drive(trainer, args, device, timed)
    return _result(args, device, "ours", dtype, elapsed, timed.wait, timed.augment, flops,
                   extra=f"{cfg.INPUT.BACKEND} backend" + (", compiled" if cfg.MODEL.COMPILE else ""))


def _drive(trainer, args, device: torch.device, timed) -> float:
    trainer.model.train()
    trainer.optimizer.zero_grad(set_to_none=True)
    for h in trainer.hooks:
        h.before_train()
    start = 0.0
    for it in range(args.warmup + args.iters):
        if it == args.warmup:
            _sync(device)
            timed.wait = timed.augment = 0.0
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            start = time.perf_counter()
        trainer.iter = it
        trainer.storage.step = it + 1
        for h in trainer.hooks:
            h.before_step()
        trainer.run_step()
        for h in trainer.hooks:
            h.after_step()
    _sync(device)
    return time.perf_counter() - start


# ---------------------------------------------------------------------------- lightly
class LightlyBYOL(nn.Module):
    """lightly's BYOL module (examples/pytorch/byol.py) around a given backbone."""

    def __init__(self, backbone: nn.Module, feature_dim: int) -> None:
        from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
        from lightly.models.utils import deactivate_requires_grad

        super().__init__()
        self.backbone = backbone
        self.projection_head = BYOLProjectionHead(feature_dim, 4096, 256)
        self.prediction_head = BYOLPredictionHead(256, 4096, 256)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)

    def online(self, x):
        return self.prediction_head(self.projection_head(self.backbone(x).flatten(start_dim=1)))

    def target(self, x):
        return self.projection_head_momentum(self.backbone_momentum(x).flatten(start_dim=1)).detach()

    def forward(self, views):
        """Both directions of the loss, as lightly's training step (used for the FLOP count)."""
        x0, x1 = views
        return self.online(x0), self.target(x0), self.online(x1), self.target(x1)


def run_lightly(args, data_root: str, precision: str) -> Dict:
    import torchvision
    from lightly.loss import NegativeCosineSimilarity
    from lightly.models.utils import update_momentum
    from lightly.transforms.byol_transform import BYOLTransform, BYOLView1Transform, BYOLView2Transform
    from lightly.utils.lars import LARS as LightlyLARS
    from lightly.utils.scheduler import cosine_schedule

    device = torch.device(args.device)
    cfg = ours_cfg(args, data_root, None, tempfile.gettempdir())
    backbone = build_backbone_from_cfg(cfg)  # the same backbone module as ours
    model = LightlyBYOL(backbone, backbone.out_dim).to(device)
    bf16 = precision == "bf16"
    if bf16:
        model = model.to(memory_format=torch.channels_last)
    probe_views = [torch.randn(2, 3, args.image_size, args.image_size, device=device) for _ in range(2)]
    flops = train_flops_per_image(model, (probe_views,), 2)
    size = args.image_size
    transform = BYOLTransform(BYOLView1Transform(input_size=size), BYOLView2Transform(input_size=size))
    dataset = torchvision.datasets.ImageFolder(data_root, transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True,
                                         num_workers=args.workers, persistent_workers=args.workers > 0,
                                         pin_memory=device.type == "cuda")

    def batches():
        while True:
            yield from loader

    it_batches = batches()
    criterion = NegativeCosineSimilarity()
    opt = LightlyLARS(model.parameters(), lr=0.2 * args.batch_size / 256, momentum=0.9, weight_decay=1.5e-6)
    total = args.warmup + args.iters
    wait, start = 0.0, 0.0
    for step in range(total):
        if step == args.warmup:
            _sync(device)
            wait = 0.0
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            start = time.perf_counter()
        t = time.perf_counter()
        (x0, x1), _ = next(it_batches)
        wait += time.perf_counter() - t
        x0, x1 = x0.to(device, non_blocking=True), x1.to(device, non_blocking=True)
        m = cosine_schedule(step, total, 0.99, 1.0)
        update_momentum(model.backbone, model.backbone_momentum, m=m)
        update_momentum(model.projection_head, model.projection_head_momentum, m=m)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            p0, z0, p1, z1 = model((x0, x1))
            loss = 0.5 * (criterion(p0, z1) + criterion(p1, z0))
        loss.backward()
        opt.step()
        opt.zero_grad()
        float(loss.detach())  # the logged loss: one host sync per step, as ours
    _sync(device)
    elapsed = time.perf_counter() - start
    return _result(args, device, "lightly", torch.bfloat16 if bf16 else None, elapsed, wait, 0.0, flops,
                   extra="BYOLTransform in workers")


def _result(args, device, pipeline, dtype, elapsed, wait, augment, flops, extra="") -> Dict:
    ips = args.batch_size * args.iters / elapsed
    return {
        "pipeline": pipeline, "precision": "bf16" if dtype == torch.bfloat16 else "fp32", "notes": extra,
        "images_per_s": ips, "data_wait_pct": 100 * wait / elapsed, "augment_pct": 100 * augment / elapsed,
        "peak_mem_mb": peak_memory_mb(device), "gflops_per_image": flops / 1e9, "achieved_tflops": ips * flops / 1e12,
    }


# ---------------------------------------------------------------------------- driver
def _child(args) -> None:
    pipeline, precision, data_root, out = args.run.split(":", 3)
    if args.device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    prec = None if precision == "default" else precision
    res = run_ours(args, data_root, prec) if pipeline == "ours" else run_lightly(args, data_root, precision)
    with open(out, "w") as f:
        json.dump(res, f)


def _spawn(argv: List[str], pipeline: str, precision: str, data_root: str) -> Dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    run = ["--run", f"{pipeline}:{precision}:{data_root}:{out}"]
    i = argv.index("--opts") if "--opts" in argv else len(argv)  # --opts swallows the rest of the line
    cmd = [sys.executable, os.path.abspath(__file__)] + argv[:i] + run + argv[i:]
    subprocess.run(cmd, check=True)
    with open(out) as f:
        res = json.load(f)
    os.unlink(out)
    return res


def machine_line(args) -> str:
    cpu = cpu_name()
    gpu = f", GPU {torch.cuda.get_device_name()}" if args.device == "cuda" else ""
    return f"{cpu}, {os.cpu_count()} logical CPUs{gpu}; torch {torch.__version__}"


def main(argv=None) -> List[Dict]:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.run:
        _child(args)
        return []
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but torch.cuda.is_available() is False")
    device = torch.device(args.device)
    bf16_ok = device.type == "cuda" or _cpu_has_bf16()
    default_dtype = amp_dtype_from_cfg(ours_cfg(args, "", None, ""), device)
    default = "bf16" if default_dtype == torch.bfloat16 else "fp32"
    plan = []
    pipelines = args.pipelines.split(",")
    if "ours" in pipelines:
        plan.append(("ours", "default"))
        other = "fp32" if default == "bf16" else "bf16"
        if other == "fp32" or bf16_ok:
            plan.append(("ours", other))
    if "lightly" in pipelines:
        plan += [("lightly", "fp32")] + ([("lightly", "bf16")] if bf16_ok else [])
    peak = {"fp32": matmul_peak(device, torch.float32)}
    if bf16_ok:
        peak["bf16"] = matmul_peak(device, torch.bfloat16)
    with tempfile.TemporaryDirectory() as data_root:
        n = args.num_images or max(64, 2 * args.batch_size)
        t = time.perf_counter()
        make_jpegs(data_root, n)
        print(f"generated {n} JPEGs in {time.perf_counter() - t:.1f} s", flush=True)
        best: Dict[Tuple[str, str], Dict] = {}
        for rep in range(args.repeats):
            for pipeline, precision in plan:
                print(f"running {pipeline} ({precision}), round {rep + 1} of {args.repeats} ...", flush=True)
                res = _spawn(argv, pipeline, precision, data_root)
                key = (pipeline, precision)
                if key not in best or res["images_per_s"] > best[key]["images_per_s"]:
                    best[key] = res
        rows = []
        for (pipeline, precision), res in best.items():
            res["default"] = (pipeline == "ours" and precision == "default") or (pipeline == "lightly" and precision == "fp32")
            res["mfu_pct"] = 100 * res["achieved_tflops"] * 1e12 / peak[res["precision"]]
            rows.append(res)
    _print(args, rows, peak)
    if args.json:
        text = json.dumps({"machine": machine_line(args), "args": vars(args), "peak_flops": peak, "rows": rows}, indent=2)
        atomic_write(args.json, lambda f: f.write(text.encode()))
    return rows


def _print(args, rows: List[Dict], peak: Dict[str, float]) -> None:
    print(f"\n{machine_line(args)}")
    backbone = args.backbone or "config's backbone"
    print(f"{args.config_file}, {backbone}, {args.image_size} px, batch {args.batch_size}, {args.workers} workers, "
          f"{args.iters} timed + {args.warmup} warm-up steps, best of {args.repeats} interleaved round(s); "
          f"device peak (measured matmul, best of 6): "
          + ", ".join(f"{k} {v / 1e12:.2f} TFLOP/s" for k, v in peak.items()))
    lightly_by_prec = {r["precision"]: r for r in rows if r["pipeline"] == "lightly"}
    lightly_default = next((r for r in rows if r["pipeline"] == "lightly" and r["default"]), None)
    table = []
    for r in rows:
        same = lightly_by_prec.get(r["precision"])
        ratio_same = f"{r['images_per_s'] / same['images_per_s']:.2f}x" if same else "-"
        ratio_def = (f"{r['images_per_s'] / lightly_default['images_per_s']:.2f}x"
                     if lightly_default and r["default"] else "")
        table.append([r["pipeline"] + (" (default)" if r["default"] else ""), r["precision"], r["notes"],
                      f"{r['images_per_s']:.1f}", ratio_same, ratio_def, f"{r['data_wait_pct']:.1f}",
                      f"{r['augment_pct']:.1f}", f"{r['peak_mem_mb']:,.0f}", f"{r['gflops_per_image']:.1f}",
                      f"{r['mfu_pct']:.1f}"])
    print(tabulate(table, headers=["pipeline", "precision", "data path", "images/s", "x lightly (same prec.)",
                                   "x lightly (defaults)", "data wait %", "augment on main %", "peak mem MB",
                                   "GFLOP/image", "MFU %"], tablefmt="github"))


if __name__ == "__main__":
    main()
