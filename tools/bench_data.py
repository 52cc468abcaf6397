#!/usr/bin/env python
"""Benchmark of the data pipeline: two-view augmentation throughput, and data wait in training.

Table 1 -- two-view augmented images per second (one image in -> its two BYOL views out, as
normalised float tensors), for three implementations of the same recipe, all starting
from images already DECODED IN MEMORY (no file reading, no JPEG decoding anywhere):

* ``lightly``: ``lightly.transforms.BYOLTransform`` on a PIL image, per image (its blur is
  PIL's radius blur, not a 23x23 convolution).
* ``ours PIL``: ``MultiViewPILTransform`` (torchvision ops on a PIL image), per image: the
  ``INPUT.BACKEND "pil"`` reference path.
* ``ours batched``: ``BatchedMultiViewAugment(crop=True)`` on a uint8 ``[B,3,H,W]`` tensor:
  the batch gather from the in-memory set + random resized crop + every op, batched with
  per-sample parameters, all on the device from decoded uint8 (the ``INPUT.BACKEND
  "batched"`` path for in-memory sets).
* ``ours gpu backend, decode on device`` (224 px only): ``INPUT.BACKEND "gpu"``: the batch's
  JPEG files (the sources encoded at quality 90) decoded on the device (nvJPEG on CUDA,
  libjpeg-turbo on the CPU), zero-padded, then crop + every op batched. The only row that
  includes JPEG decoding, so it is a lower bound next to the others.
* ``ours batched, crop in workers`` (224 px only): train_net's path for file datasets such
  as ImageNet: ``CropOnlyTransform`` per image (PIL random resized crop of each view from
  the decoded PIL image, as lightly's input, in T processes like the per-image paths) +
  ``BatchedMultiViewAugment(crop=False)`` on the batch of uint8 crops (T threads). The two
  times per image are summed: images/s = 1 / (1 / crop rate + 1 / augment rate).

Every path does crop + resize + flip + jitter + grayscale + blur + solarize + normalise;
the per-image paths do not collate their outputs into a batch (that cost is theirs in
Table 2). With ``--threads T`` the per-image paths run in T processes of one thread each
(PIL ops are single-threaded) and the batched path in one process with T torch threads;
"per core" divides by T. Warm-up images/batches are excluded from every timing. 32 px =
CIFAR-10 images from the shipped subset (preset ``byol_cifar``, no blur; lightly with
blur p 0); 224 px = those images upsampled (bicubic) to 375x500, ImageNet's typical size
(preset ``byol``).

Table 2 -- fraction of a ResNet-18 (CIFAR stem) training step spent on data, on the
shipped CIFAR-10 subset at 32 px: PIL paths in ``--workers`` DataLoader workers (1 thread
each), the batched path on the main process (its augmentation runs in
``batch_transform``, serially with the model on a CPU). Per step: ``next(iterator)`` (time
blocked waiting for the loader), ``batch_transform`` (device copy; for the batched path the
augmentation), and compute (forward + backward + SGD step of the online network on both
views: a BYOL step adds a target forward, ~1.3x the compute, so these fractions are upper
bounds).

Examples:
    python tools/bench_data.py --threads 2                 # both tables, 32 and 224 px
    python tools/bench_data.py --device cuda --threads 8
    python tools/bench_data.py --quick                     # smoke test (seconds)
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from typing import Callable, Dict, List, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from tabulate import tabulate  # noqa: E402

from ssl_zoo.data.transforms import (IMAGENET_MEAN, IMAGENET_STD, BatchedMultiViewAugment,  # noqa: E402
                                     CropOnlyTransform, MultiViewPILTransform, get_view_specs)
from ssl_zoo.data.transforms.decode import decode_images, pad_to_batch  # noqa: E402
from ssl_zoo.utils.env import cpu_name  # noqa: E402

PATHS = ("lightly BYOLTransform", "ours PIL", "ours batched")
CROP_IN_WORKERS = "ours batched, crop in workers"  # extra row at sizes > 32 (file datasets' path)
GPU_BACKEND = "ours gpu backend, decode on device"  # extra row at sizes > 32 (INPUT.BACKEND gpu)
INPUTS = {PATHS[0]: "PIL image", PATHS[1]: "PIL image", PATHS[2]: "uint8 batch", CROP_IN_WORKERS: "PIL image",
          GPU_BACKEND: "JPEG bytes"}
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Examples:\n"
                                       "    python tools/bench_data.py --quick              # smoke run, small sizes\n"
                                       "    python tools/bench_data.py --threads 16 --device cuda --batch-size 256\n"
                                       "(the module docstring explains both tables)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the batched path and the model run")
    p.add_argument("--batch-size", type=int, default=128, help="images per batch (Table 1 batched path, Table 2)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads/processes per path")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers of the PIL paths in Table 2 "
                   "(default: --threads)")
    p.add_argument("--iters", type=int, default=10, help="timed batches per measurement")
    p.add_argument("--warmup", type=int, default=2, help="untimed batches before each measurement")
    p.add_argument("--train-iters", type=int, default=5, help="timed training steps per path in Table 2 "
                   "(a ResNet-18 step on 2 x batch images takes seconds on a CPU)")
    p.add_argument("--sizes", default="32,224", help="comma-separated output sizes for Table 1")
    p.add_argument("--tables", default="aug,train", help="which tables: aug, train or both")
    p.add_argument("--json", default="", help="also write the results to this JSON file")
    p.add_argument("--quick", action="store_true", help="tiny run for smoke tests (not a measurement)")
    p.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                   help="Table 1 timing: wall time, or CPU time of the measuring process (needs --threads 1; "
                        "per-core rates that other processes on a shared machine do not dilute)")
    args = p.parse_args(argv)
    if args.quick:
        args.batch_size, args.iters, args.train_iters, args.warmup, args.threads = 4, 1, 1, 1, 1
        args.workers = 0 if args.workers is None else args.workers
    if args.workers is None:
        args.workers = args.threads
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but CUDA is not available")
    if args.clock == "cpu" and (args.threads != 1 or args.device != "cpu"):
        p.error("--clock cpu measures one CPU thread: use it with --threads 1 --device cpu")
    return args


def machine_line(args) -> str:
    cpu = cpu_name()
    import PIL
    import torchvision

    gpu = f", GPU {torch.cuda.get_device_name()}" if args.device == "cuda" else ""
    return (f"{cpu}, {os.cpu_count()} logical CPUs{gpu}; torch {torch.__version__}, torchvision "
            f"{torchvision.__version__}, Pillow {PIL.__version__}, lightly {_lightly_version()}; "
            f"threads={args.threads}, device={args.device}, batch={args.batch_size}, clock={args.clock}, "
            f"{args.iters} timed + {args.warmup} warm-up batches")


def _lightly_version() -> str:
    import lightly

    return lightly.__version__


# ---------------------------------------------------------------------------- inputs
def source_images(size: int, n: int) -> torch.Tensor:
    """uint8 [n, 3, H, W]: CIFAR-10 (32 px) or CIFAR-10 upsampled to 375x500 (ImageNet-like size)."""
    from ssl_zoo.data.datasets import load_builtin_cifar10

    images = load_builtin_cifar10(train=True).images[:n]
    if size <= 32:
        return images.clone()
    up = F.interpolate(images.float(), size=(375, 500), mode="bicubic", align_corners=False)
    return up.round_().clamp_(0, 255).to(torch.uint8)


def to_pil(images: torch.Tensor) -> List[Image.Image]:
    return [Image.fromarray(im.permute(1, 2, 0).numpy(), mode="RGB") for im in images]


def recipe(size: int):
    """(our specs, lightly transform) of the same BYOL recipe at ``size``."""
    from lightly.transforms import BYOLTransform, BYOLView1Transform, BYOLView2Transform

    if size <= 32:  # byol_cifar: no blur
        specs, blur = get_view_specs("byol_cifar", size), (0.0, 0.0)
    else:
        specs, blur = get_view_specs("byol", size), (1.0, 0.1)
    mean = CIFAR_MEAN if size <= 32 else IMAGENET_MEAN
    norm = {"mean": list(mean), "std": list(IMAGENET_STD)}
    lightly = BYOLTransform(BYOLView1Transform(input_size=size, gaussian_blur=blur[0], normalize=norm),
                            BYOLView2Transform(input_size=size, gaussian_blur=blur[1], normalize=norm))
    return specs, mean, lightly


# ---------------------------------------------------------------------------- Table 1
# Table 1's clock: wall time (default) or this process' CPU time (--clock cpu, one thread only): on
# a shared machine CPU time counts only the time our thread actually ran, so per-core rates of
# different paths stay comparable when other processes take the cores in turns.
_CLOCK = [time.perf_counter]


def _per_image_worker(transform, pils, start, count, warmup, barrier, queue) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(start)
    for k in range(warmup):
        transform(pils[(start + k) % len(pils)])
    barrier.wait()
    t0 = _CLOCK[0]()  # wall: CLOCK_MONOTONIC, comparable across processes
    for k in range(count):
        transform(pils[(start + k) % len(pils)])
    queue.put((t0, _CLOCK[0](), count))


def per_image_rate(transform: Callable, pils: Sequence[Image.Image], n: int, warmup: int, threads: int) -> float:
    """Images/s of ``transform`` over ``n`` images split between ``threads`` forked processes."""
    if threads == 1:  # in-process: no fork needed
        q: List = []
        barrier = type("NoBarrier", (), {"wait": staticmethod(lambda: None)})
        _per_image_worker(transform, pils, 0, n, warmup, barrier, type("Q", (), {"put": q.append}))
        t0, t1, count = q[0]
        return count / (t1 - t0)
    ctx = mp.get_context("fork")
    barrier, queue = ctx.Barrier(threads), ctx.Queue()
    share = [n // threads + (i < n % threads) for i in range(threads)]
    procs = [ctx.Process(target=_per_image_worker, args=(transform, pils, 997 * i, share[i], warmup, barrier, queue))
             for i in range(threads)]
    for proc in procs:
        proc.start()
    results = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    return sum(r[2] for r in results) / (max(r[1] for r in results) - min(r[0] for r in results))


def batched_rate(augment: BatchedMultiViewAugment, images: torch.Tensor, batch: int, iters: int, warmup: int,
                 device: torch.device) -> float:
    """Images/s of gather + batched augmentation of ``iters`` batches (after ``warmup`` batches)."""
    images = images.to(device)  # [N, 3, H, W] whole images, or [N, V, 3, S, S] crops (crop=False)
    n = images.shape[0]
    g = torch.Generator().manual_seed(0)

    def step(i: int) -> None:
        idx = (torch.arange(batch) + i * batch) % n
        augment(images.index_select(0, idx.to(device)), generator=g)

    for i in range(warmup):
        step(i)
    _sync(device)
    t0 = _CLOCK[0]()
    for i in range(iters):
        step(warmup + i)
    _sync(device)
    return batch * iters / (_CLOCK[0]() - t0)


def gpu_backend_rate(augment: BatchedMultiViewAugment, images: torch.Tensor, batch: int, iters: int, warmup: int,
                     device: torch.device) -> float:
    """Images/s of INPUT.BACKEND "gpu"'s main-process work: decode a batch of JPEG files (quality 90)
    on ``device`` (nvJPEG, batched, on CUDA), zero-pad, crop + every op. Unlike the other rows this
    one includes JPEG decoding."""
    from torchvision.io import encode_jpeg

    files = [encode_jpeg(im, quality=90) for im in images]
    g = torch.Generator().manual_seed(0)

    def step(i: int) -> None:
        chunk = [files[(i * batch + k) % len(files)] for k in range(batch)]
        x, sizes = pad_to_batch(decode_images(chunk, device))
        augment(x, generator=g, image_sizes=sizes)

    for i in range(warmup):
        step(i)
    _sync(device)
    t0 = _CLOCK[0]()
    for i in range(iters):
        step(warmup + i)
    _sync(device)
    return batch * iters / (_CLOCK[0]() - t0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def augmentation_table(args) -> List[Dict]:
    device = torch.device(args.device)
    rows = []
    torch.set_num_threads(args.threads)
    for size in [int(s) for s in args.sizes.split(",") if s]:
        n_src = max(8, min(1024 if size <= 32 else 64, args.batch_size * 2))
        images = source_images(size, n_src)
        pils = to_pil(images)
        specs, mean, lightly = recipe(size)
        n = args.batch_size * args.iters
        warm = args.batch_size * args.warmup // max(1, args.threads)
        rates = {
            PATHS[0]: per_image_rate(lightly, pils, n, warm, args.threads),
            PATHS[1]: per_image_rate(MultiViewPILTransform(specs, mean, IMAGENET_STD), pils, n, warm, args.threads),
        }
        torch.set_num_threads(args.threads)
        rates[PATHS[2]] = batched_rate(BatchedMultiViewAugment(specs, mean, IMAGENET_STD, crop=True), images,
                                       args.batch_size, args.iters, args.warmup, device)
        paths = list(PATHS)
        if size > 32:  # file datasets (ImageNet): PIL crop per image in workers + batched rest
            crop_t = CropOnlyTransform(specs)
            crop_rate = per_image_rate(crop_t, pils, n, warm, args.threads)
            crops = torch.stack([crop_t(im) for im in pils])  # [N, V, 3, S, S] uint8
            torch.set_num_threads(args.threads)
            aug_rate = batched_rate(BatchedMultiViewAugment(specs, mean, IMAGENET_STD, crop=False), crops,
                                    args.batch_size, args.iters, args.warmup, device)
            rates[CROP_IN_WORKERS] = 1.0 / (1.0 / crop_rate + 1.0 / aug_rate)
            paths.append(CROP_IN_WORKERS)
            torch.set_num_threads(args.threads)
            rates[GPU_BACKEND] = gpu_backend_rate(BatchedMultiViewAugment(specs, mean, IMAGENET_STD, crop=True),
                                                  images, args.batch_size, args.iters, args.warmup, device)
            paths.append(GPU_BACKEND)
            print(f"{size} px, {CROP_IN_WORKERS}: CropOnlyTransform {crop_rate:,.0f} images/s + batched "
                  f"augmentation of the crops {aug_rate:,.0f} images/s ({args.threads} thread(s) each)")
        src = "x".join(str(s) for s in images.shape[-2:])
        for path in paths:
            on_gpu = path in (PATHS[2], CROP_IN_WORKERS, GPU_BACKEND) and device.type == "cuda"
            rows.append({"size": size, "source": src, "path": path, "input": INPUTS[path],
                         "runs on": f"{args.device}" if on_gpu else f"{args.threads} CPU thread(s)",
                         "images/s": rates[path], "per core": None if on_gpu else rates[path] / args.threads,
                         "x lightly": rates[path] / rates[PATHS[0]]})
    return rows


# ---------------------------------------------------------------------------- Table 2
def _train_step_fn(device: torch.device, lr: float = 0.01) -> Callable[[List[torch.Tensor]], float]:
    """One SGD step of ResNet-18 (CIFAR stem) + linear projection on both views (2 - 2 cos loss)."""
    from ssl_zoo.modeling.backbones.build import build_backbone

    torch.manual_seed(0)
    backbone = build_backbone("resnet18", cifar_stem=True)
    model = torch.nn.Sequential(backbone, torch.nn.Linear(backbone.out_dim, 128)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)

    def step(views: List[torch.Tensor]) -> float:
        z1, z2 = model(views[0]), model(views[1])
        loss = (2 - 2 * F.cosine_similarity(z1, z2.detach(), dim=1).mean()
                + 2 - 2 * F.cosine_similarity(z2, z1.detach(), dim=1).mean())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step


def _lightly_train_data(dataset, transform, batch: int, workers: int, device: torch.device):
    from torch.utils.data import DataLoader

    from ssl_zoo.data.build import _ToDevice
    from ssl_zoo.data.samplers import InfiniteBatchSampler

    dataset.transform = transform
    loader = DataLoader(dataset, batch_sampler=InfiniteBatchSampler(len(dataset), batch, seed=0),
                        num_workers=workers, persistent_workers=workers > 0, pin_memory=device.type == "cuda")
    return iter(loader), _ToDevice(device)


def training_table(args) -> List[Dict]:
    from ssl_zoo.data.build import make_train_data
    from ssl_zoo.data.datasets import load_builtin_cifar10
    from ssl_zoo.data.datasets import InMemoryImageDataset

    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    full = load_builtin_cifar10(train=True)
    specs, mean, lightly = recipe(32)
    rows = []
    for path in PATHS:
        ds = InMemoryImageDataset(full.images, full.targets, full.classes)  # fresh transform slot, shared pixels
        workers = 0 if path == PATHS[2] else args.workers
        if path == PATHS[0]:
            iterator, transform = _lightly_train_data(ds, lightly, args.batch_size, workers, device)
        else:
            data = make_train_data(ds, specs=specs, backend="batched" if path == PATHS[2] else "pil", mean=mean,
                                   std=IMAGENET_STD, global_batch_size=args.batch_size, seed=0, device=device,
                                   num_workers=workers, pin_memory=device.type == "cuda")
            iterator, transform = data.iterator, data.batch_transform
        step = _train_step_fn(device)
        times = []
        for it in range(args.warmup + args.train_iters):
            t0 = time.perf_counter()
            batch = next(iterator)
            t1 = time.perf_counter()
            views, _ = transform(batch, it)
            _sync(device)
            t2 = time.perf_counter()
            step(views[:2])
            _sync(device)
            if it >= args.warmup:
                times.append((t1 - t0, t2 - t1, time.perf_counter() - t2))
        del iterator  # stops the workers
        wait, aug, compute = (sum(t[k] for t in times) / len(times) for k in range(3))
        total = wait + aug + compute
        rows.append({"path": path, "workers": workers, "next() ms": 1e3 * wait, "batch_transform ms": 1e3 * aug,
                     "compute ms": 1e3 * compute, "blocked in next()": wait / total,
                     "data total": (wait + aug) / total, "images/s": args.batch_size / total})
    return rows


# ---------------------------------------------------------------------------- main
def _fmt_rows(rows: List[Dict]) -> List[List]:
    def fmt(key, v):
        if v is None:
            return "-"
        if key == "x lightly":
            return f"{v:.2f}x"
        if key in ("blocked in next()", "data total"):
            return f"{100 * v:.1f}%"
        if isinstance(v, float):
            return f"{v:,.1f}" if v < 100 else f"{v:,.0f}"
        return v

    return [[fmt(k, v) for k, v in r.items()] for r in rows]


def main(argv=None) -> Dict[str, List[Dict]]:
    args = parse_args(argv)
    _CLOCK[0] = time.process_time if args.clock == "cpu" else time.perf_counter
    tables = set(args.tables.split(","))
    results: Dict[str, List[Dict]] = {"machine": machine_line(args)}
    if args.quick:
        print("--quick: smoke-test sizes, NOT a measurement")
    if "aug" in tables:
        rows = augmentation_table(args)
        results["augmentation"] = rows
        print(f"\nTwo-view augmented images/s (from decoded images in memory; warm-up excluded)\n{machine_line(args)}")
        print(tabulate(_fmt_rows(rows), headers=list(rows[0]), tablefmt="github", disable_numparse=True))
    if "train" in tables:
        rows = training_table(args)
        results["training"] = rows
        print(f"\nData wait in a ResNet-18 (CIFAR stem) step, CIFAR-10 32 px, batch {args.batch_size}, "
              f"{args.workers} worker(s) for PIL paths, {args.train_iters} timed steps\n{machine_line(args)}")
        print(tabulate(_fmt_rows(rows), headers=list(rows[0]), tablefmt="github", disable_numparse=True))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
