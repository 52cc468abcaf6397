"""Samplers and train/eval pipelines: determinism, sharding, resume, batch formats."""
import os
import random

import numpy as np
import pytest
import torch
from torchvision import transforms as T
from PIL import Image

from ssl_zoo.config import get_cfg
from ssl_zoo.data.build import TrainData, build_eval_loader, build_train_loader, make_eval_loader, make_train_data
from ssl_zoo.data.catalog import build_dataset
from ssl_zoo.data.samplers import InfiniteBatchSampler, SeededDataset, mix_seed
from ssl_zoo.data.transforms.presets import get_view_specs

torch.set_num_threads(1)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _take(sampler, n):
    return [b for _, b in zip(range(n), iter(sampler))]


# ---------------------------------------------------------------------------- sampler
def test_mix_seed_deterministic_and_distinct():
    assert mix_seed(1, 2) == mix_seed(1, 2)
    seeds = {mix_seed(s, e) for s in range(20) for e in range(20)}
    assert len(seeds) == 400 and all(0 <= s < 2 ** 63 for s in seeds)
    assert mix_seed(0, 1) != mix_seed(1, 0)


@pytest.mark.parametrize("size", [48, 53])
def test_epoch_covers_each_index_once(size):
    s = InfiniteBatchSampler(size, global_batch_size=8, seed=3)
    assert s.iters_per_epoch == size // 8
    for epoch in range(2):
        batches = _take(InfiniteBatchSampler(size, 8, 3, start_iter=epoch * s.iters_per_epoch), s.iters_per_epoch)
        flat = [i for b in batches for i in b]
        assert len(flat) == len(set(flat)) == s.iters_per_epoch * 8  # no repeats, drop-last tail only
        assert set(flat) <= set(range(size))
        if size % 8 == 0:
            assert sorted(flat) == list(range(size))
        assert torch.equal(torch.tensor(flat), s.epoch_permutation(epoch))
    assert not torch.equal(s.epoch_permutation(0), s.epoch_permutation(1))  # reshuffled per epoch


def test_ranks_disjoint_and_concatenate_to_single_process_order():
    size, gb, world, n = 50, 12, 3, 10  # 4 iters per epoch: crosses two epoch boundaries
    single = _take(InfiniteBatchSampler(size, gb, seed=7), n)
    per_rank = [_take(InfiniteBatchSampler(size, gb, seed=7, rank=r, world_size=world), n) for r in range(world)]
    for it in range(n):
        parts = [per_rank[r][it] for r in range(world)]
        assert all(len(p) == gb // world for p in parts)
        assert sum(parts, []) == single[it]
        assert len(set(sum(parts, []))) == gb


def test_start_iter_resumes_identically():
    ref = _take(InfiniteBatchSampler(37, 6, seed=1, rank=1, world_size=2, with_seeds=True), 20)
    for start in (0, 5, 6, 13):  # 6 iters per epoch: resume inside and at an epoch boundary
        resumed = _take(InfiniteBatchSampler(37, 6, seed=1, rank=1, world_size=2, start_iter=start, with_seeds=True),
                        20 - start)
        assert resumed == ref[start:]


def test_per_sample_seeds():
    s = InfiniteBatchSampler(20, 4, seed=9, with_seeds=True)
    first = _take(s, 6)  # 5 iters per epoch
    assert all(seed == mix_seed(9, 0, i) for i, seed in first[0])
    assert all(seed == mix_seed(9, 1, i) for i, seed in first[5])


def test_sampler_validation():
    with pytest.raises(ValueError, match="divisible"):
        InfiniteBatchSampler(100, 10, 0, rank=0, world_size=3)
    with pytest.raises(ValueError, match="smaller than one global batch"):
        InfiniteBatchSampler(5, 10, 0)


def test_seeded_dataset_reproducible_and_restores_global_rng():
    class Noisy(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return torch.rand(2), random.random(), np.random.rand()

    ds = SeededDataset(Noisy())
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a, b, c = ds[(1, 123)], ds[(1, 123)], ds[(1, 124)]
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]
    assert not torch.equal(a[0], c[0])
    assert torch.equal(torch.get_rng_state(), before)  # trainer's RNG untouched in the main process


# ---------------------------------------------------------------------------- train pipelines
def _cfg(backend="batched", batch=16, train="builtin_cifar10_train"):
    cfg = get_cfg()
    cfg.DATASETS.TRAIN = train
    cfg.INPUT.BACKEND = backend
    cfg.INPUT.IMAGE_SIZE = 32
    cfg.INPUT.AUG_PRESET = "byol_cifar"
    cfg.SOLVER.IMS_PER_BATCH = batch
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DEVICE = "cpu"
    cfg.SEED = 5
    return cfg


def _check_views(views, labels, batch, size=32):
    assert isinstance(views, list) and len(views) == 2
    for v in views:
        assert v.shape == (batch, 3, size, size) and v.dtype == torch.float32 and torch.isfinite(v).all()
    assert labels.shape == (batch,) and labels.dtype == torch.int64


def test_batched_in_memory_shapes_and_determinism():
    data = build_train_loader(_cfg())
    assert isinstance(data, TrainData)
    assert data.num_images == 5000 and data.iters_per_epoch == 5000 // 16 and data.batch_size == 16
    batches = [next(data.iterator) for _ in range(3)]
    images, labels = batches[0]
    assert images.shape == (16, 3, 32, 32) and images.dtype == torch.uint8 and labels.dtype == torch.int64
    ds = data.dataset
    idx = InfiniteBatchSampler(5000, 16, seed=5).epoch_permutation(0)[:16]
    assert torch.equal(images, ds.images[idx]) and torch.equal(labels, ds.targets[idx])

    v0, y0 = data.batch_transform(batches[0], 0)
    _check_views(v0, y0, 16)
    v0b, _ = data.batch_transform(batches[0], 0)  # same (seed, iteration) -> same augmentation
    assert all(torch.equal(a, b) for a, b in zip(v0, v0b))
    v1, _ = data.batch_transform(batches[0], 1)  # another iteration -> other parameters
    assert not torch.equal(v0[0], v1[0])
    assert not torch.equal(v0[0], v0[1])  # the two views differ

    resumed = build_train_loader(_cfg(), start_iter=2)
    images2, labels2 = next(resumed.iterator)
    assert torch.equal(images2, batches[2][0]) and torch.equal(labels2, batches[2][1])
    ref = data.batch_transform(batches[2], 2)[0]
    assert all(torch.equal(a, b) for a, b in zip(ref, resumed.batch_transform((images2, labels2), 2)[0]))


def test_world_size_two_shards_concatenate_to_global_batch():
    ds = build_dataset("builtin_cifar10_train")
    specs = get_view_specs("byol_cifar", 32)
    kw = dict(specs=specs, backend="batched", mean=MEAN, std=STD, global_batch_size=16, seed=5)
    single = next(make_train_data(ds, **kw).iterator)[0]
    parts = [next(make_train_data(ds, rank=r, world_size=2, **kw).iterator)[0] for r in range(2)]
    assert parts[0].shape == (8, 3, 32, 32)
    assert torch.equal(torch.cat(parts), single)


def test_pil_backend_shapes_and_resume():
    data = build_train_loader(_cfg("pil", batch=8))
    batches = [next(data.iterator) for _ in range(2)]
    views, labels = data.batch_transform(batches[1], 1)
    _check_views(views, labels, 8)
    resumed = build_train_loader(_cfg("pil", batch=8), start_iter=1)
    views2, labels2 = resumed.batch_transform(next(resumed.iterator), 1)
    assert torch.equal(labels, labels2)
    assert all(torch.equal(a, b) for a, b in zip(views, views2))  # per-sample seeds reproduce PIL aug


def test_pil_backend_with_workers_matches_main_process():
    """Worker-side augmentation depends on the per-sample seed only, not on the worker."""
    a = build_train_loader(_cfg("pil", batch=8))
    cfg = _cfg("pil", batch=8)
    cfg.DATALOADER.NUM_WORKERS = 2
    b = build_train_loader(cfg)
    va, ya = next(a.iterator)
    vb, yb = next(b.iterator)
    assert torch.equal(ya, yb) and all(torch.equal(x, y) for x, y in zip(va, vb))


def _small_folder(root, n=6, size=(40, 30)):
    rng = np.random.default_rng(1)
    for cls in ("x", "y"):
        os.makedirs(root / cls)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return str(root)


def test_batched_file_dataset_crops_in_workers(tmp_path):
    data = build_train_loader(_cfg("batched", batch=4, train=_small_folder(tmp_path)))
    assert data.num_images == 12 and data.iters_per_epoch == 3
    batch = next(data.iterator)
    crops, labels = batch
    assert crops.shape == (4, 2, 3, 32, 32) and crops.dtype == torch.uint8  # [B, V, 3, S, S]
    views, labels = data.batch_transform(batch, 0)
    _check_views(views, labels, 4)
    resumed = build_train_loader(_cfg("batched", batch=4, train=str(tmp_path)), start_iter=0)
    batch2 = next(resumed.iterator)
    assert torch.equal(batch2[0], crops)
    assert all(torch.equal(a, b) for a, b in zip(views, resumed.batch_transform(batch2, 0)[0]))


@pytest.mark.parametrize("backend", ["batched", "pil"])
def test_multicrop_file_dataset_both_backends(tmp_path, backend):
    """Views of different sizes (2 global + 6 local): workers give a list of V batches."""
    cfg = _cfg(backend, batch=4, train=_small_folder(tmp_path))
    cfg.INPUT.AUG_PRESET = "byol_multicrop"  # at 32 px: 2 x 32 + 6 x 14
    data = build_train_loader(cfg)
    batch = next(data.iterator)
    if backend == "batched":
        assert isinstance(batch[0], list) and [v.dtype for v in batch[0]] == [torch.uint8] * 8
    views, labels = data.batch_transform(batch, 0)
    assert [tuple(v.shape) for v in views] == [(4, 3, 32, 32)] * 2 + [(4, 3, 14, 14)] * 6
    assert labels.shape == (4,) and all(torch.isfinite(v).all() for v in views)


def test_multicrop_in_memory_batched():
    cfg = _cfg("batched", batch=8)
    cfg.INPUT.AUG_PRESET = "byol_multicrop"
    data = build_train_loader(cfg)
    views, _ = data.batch_transform(next(data.iterator), 0)
    assert [tuple(v.shape) for v in views] == [(8, 3, 32, 32)] * 2 + [(8, 3, 14, 14)] * 6


# ---------------------------------------------------------------------------- evaluation
def test_eval_loader_in_memory_matches_to_tensor_normalize():
    cfg = _cfg()
    cfg.TEST.IMS_PER_BATCH = 300
    loader = build_eval_loader(cfg, "builtin_cifar10_test")
    batches = list(loader)
    assert len(loader) == len(batches) == 4
    assert [x.shape[0] for x, _ in batches] == [300, 300, 300, 100]
    x, y = batches[0]
    assert x.shape == (300, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    ds = build_dataset("builtin_cifar10_test")
    img, target = ds[7]
    # The protocol's geometry (PROTOCOLS.md s.1 / s.3), scaled to 32 px: resize 37 (bicubic), centre crop 32.
    tv = T.Compose([T.Resize(37, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(32), T.ToTensor(),
                    T.Normalize(MEAN, STD)])
    ref = tv(img)
    assert (x[7] - ref).abs().mean() < 0.01 and (x[7] - ref).abs().max() < 0.06 and int(y[7]) == target


def test_eval_loader_resizes_small_images_whole_and_shards():
    ds = build_dataset("builtin_cifar10_test")
    loader = make_eval_loader(ds, image_size=48, resize=256, mean=MEAN, std=STD, batch_size=64, rank=1, world_size=3)
    x, y = next(iter(loader))
    assert x.shape == (64, 3, 48, 48)
    assert torch.equal(y, ds.targets[1::3][:64])
    assert sum(b[0].shape[0] for b in loader) == len(range(1, 1000, 3))


def test_eval_loader_file_dataset(tmp_path):
    cfg = _cfg()
    cfg.INPUT.EVAL_RESIZE = 36
    cfg.TEST.IMS_PER_BATCH = 5
    loader = build_eval_loader(cfg, _small_folder(tmp_path))
    shapes = [(x.shape, y.shape) for x, y in loader]
    assert shapes[0] == ((5, 3, 32, 32), (5,)) and sum(s[1][0] for s in shapes) == 12
