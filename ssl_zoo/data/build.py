"""Training and evaluation data pipelines.

``build_train_loader(cfg, start_iter) -> TrainData``; the trainer does::

    data = build_train_loader(cfg, start_iter=trainer.iter)
    for it in range(start_iter, max_iter):
        views, labels = data.batch_transform(next(data.iterator), it)

Batch formats (per process, ``B = SOLVER.IMS_PER_BATCH // world_size``, ``V`` views of side
``S = INPUT.IMAGE_SIZE``; CPU tensors in the iterator, device tensors after ``batch_transform``):

=============================== ================================================ =========================================
path                            ``next(iterator)``                               ``batch_transform(batch, it)``
=============================== ================================================ =========================================
(a) ``INPUT.BACKEND "pil"``     ``(V x float [B,3,S,S] normalised, int64 [B])``  same, moved to the device
(b) "batched", in-memory set    ``(uint8 [B,3,H,W] whole images, int64 [B])``    ``(V x float [B,3,S,S] normalised, int64 [B])``
    (CIFAR, built-in)           (gathered by index, no DataLoader; already on    crop + flip + colour + blur + solarize on
                                the device when it is CUDA)                      the device, generator ``mix_seed(SEED, it, rank)``
(c) "batched", file dataset     ``(uint8 [B,V,3,S,S] cropped, int64 [B])``       as (b) without the crop
                                (workers decode + random-resized-crop; a list
                                of V uint8 [B,3,S_v,S_v] if view sizes differ)
(d) "gpu", file dataset         ``(B x uint8 [N_i] file bytes, int64 [B],        decode on the device (nvJPEG, batched),
                                B paths)`` (workers only read the files)         zero-pad, then as (b) with per-image
                                                                                 sizes (``encoded.py``)
=============================== ================================================ =========================================

Determinism: the order of images is a function of (SEED, iteration) and the global batch of
an iteration is the same for any world size (``samplers.py``). Augmentation is a function of
(SEED, epoch, image index) for worker-side ops (paths a, c: per-sample seeds) and of
(SEED, iteration, rank) for device-side ops (paths b, c, d). Hence ``start_iter`` resumes exactly.

An "iteration" is one batch of ``SOLVER.IMS_PER_BATCH`` images; with ``SOLVER.ACCUM_STEPS
> 1`` the trainer should count micro-batches here (``start_iter = iter * ACCUM_STEPS``,
``it = iter * ACCUM_STEPS + k``) so accumulated micro-batches get distinct augmentations.
Training always drops the incomplete tail of an epoch (``DATALOADER.DROP_LAST`` is only
meaningful for finite loaders; ``iters_per_epoch = num_images // IMS_PER_BATCH``).
"""
from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch
from torch.utils.data import DataLoader, Dataset

from ssl_zoo.data.catalog import build_dataset
from ssl_zoo.data.datasets import InMemoryImageDataset
from ssl_zoo.data.encoded import DecodeAugmentOnDevice, EncodedFiles, collate_encoded
from ssl_zoo.data.samplers import InfiniteBatchSampler, SeededDataset, mix_seed
from ssl_zoo.data.subset import subset_from_cfg
from ssl_zoo.data.transforms.batched import BatchedMultiViewAugment
from ssl_zoo.data.transforms.geometry import eval_resize, resize_centre_crop
from ssl_zoo.data.transforms.pil import CropOnlyTransform, MultiViewPILTransform, build_eval_transform
from ssl_zoo.data.transforms.presets import ViewSpec, get_view_specs
from ssl_zoo.utils import comm
from ssl_zoo.utils.env import get_device

logger = logging.getLogger(__name__)

__all__ = ["TrainData", "build_train_loader", "make_train_data", "build_eval_loader", "make_eval_loader",
           "InMemoryEvalLoader", "apply_overrides", "view_specs_from_cfg"]

Batch = Tuple[Any, torch.Tensor]
# In-memory sets up to this size are copied to the GPU once for path (b) (CIFAR-10: 150 MB).
_MAX_DEVICE_DATASET_BYTES = 4 << 30


@dataclass
class TrainData:
    """What the trainer needs from the data side (see the module docstring for formats).

    Attributes:
        iterator: infinite iterator of per-process batches, starting at ``start_iter``.
        batch_transform: ``(batch, iteration) -> (views: list of V float [B,3,S,S] on the device,
            labels int64 [B] on the device)``.
        iters_per_epoch: ``num_images // SOLVER.IMS_PER_BATCH``.
        num_images: images in the training set.
        batch_size: per-process batch B.
        dataset: the underlying dataset (classes, corrupt_files, ...).
    """

    iterator: Iterator[Batch]
    batch_transform: Callable[[Batch, int], Tuple[List[torch.Tensor], Optional[torch.Tensor]]]
    iters_per_epoch: int
    num_images: int
    batch_size: int = 0
    dataset: Optional[Dataset] = field(default=None, repr=False)


class _ToDevice:
    """Path (a): views are finished in the workers; only the host -> device copy remains."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __call__(self, batch: Batch, iteration: int):
        views, labels = batch
        return [v.to(self.device, non_blocking=True) for v in views], labels.to(self.device, non_blocking=True)


class _AugmentOnDevice:
    """Paths (b), (c): move uint8 images to the device and run the batched augmentation
    with a generator seeded by (seed, iteration, rank), so a resumed run repeats it exactly."""

    def __init__(self, augment: Callable, device: torch.device, seed: int, rank: int) -> None:
        self.augment, self.device, self.seed, self.rank = augment, device, seed, rank

    def __call__(self, batch: Batch, iteration: int):
        images, labels = batch
        if isinstance(images, (list, tuple)):
            images = [v.to(self.device, non_blocking=True) for v in images]
        else:
            images = images.to(self.device, non_blocking=True)
        # A CPU generator: parameters are drawn on the CPU and moved (no device sync, and the
        # same draws on any device).
        g = torch.Generator().manual_seed(mix_seed(self.seed, iteration, self.rank))
        return self.augment(images, generator=g), labels.to(self.device, non_blocking=True)


def _gather_batches(images: torch.Tensor, targets: torch.Tensor, sampler: InfiniteBatchSampler) -> Iterator[Batch]:
    """Path (b): index the in-memory tensors directly; a batch costs one gather."""
    for _, _, idx in sampler.iter_batches():
        idx = idx.to(images.device)
        yield images.index_select(0, idx), targets.index_select(0, idx)


def make_train_data(dataset: Dataset, *, specs: Sequence[Any], backend: str,
                    mean: Sequence[float], std: Sequence[float], global_batch_size: int, seed: int,
                    rank: int = 0, world_size: int = 1, device: torch.device = torch.device("cpu"),
                    num_workers: int = 0, pin_memory: bool = False, start_iter: int = 0) -> TrainData:
    """Build the training pipeline from explicit arguments (see :func:`build_train_loader`).

    ``dataset`` is a freshly built dataset without transform (its ``transform`` is set here).
    """
    if backend not in ("pil", "batched", "gpu"):
        raise ValueError(f"INPUT.BACKEND must be 'pil', 'batched' or 'gpu', got {backend!r}")
    in_memory = isinstance(dataset, InMemoryImageDataset)
    sampler = InfiniteBatchSampler(len(dataset), global_batch_size, seed, rank, world_size, start_iter,
                                   with_seeds=True)
    common = dict(iters_per_epoch=sampler.iters_per_epoch, num_images=len(dataset),
                  batch_size=sampler.batch_size, dataset=dataset)

    if backend in ("batched", "gpu") and in_memory:  # (b): already decoded, augmented on the device
        images, targets = dataset.images, dataset.targets
        if device.type == "cuda" and images.numel() <= _MAX_DEVICE_DATASET_BYTES:
            images, targets = images.to(device), targets.to(device)
        augment = BatchedMultiViewAugment(specs, mean, std, crop=True)
        return TrainData(_gather_batches(images, targets, sampler), _AugmentOnDevice(augment, device, seed, rank),
                         **common)

    if backend == "gpu":  # (d)
        augment = BatchedMultiViewAugment(specs, mean, std, crop=True)
        loader = DataLoader(EncodedFiles(dataset), batch_sampler=sampler, num_workers=num_workers,
                            collate_fn=collate_encoded, pin_memory=pin_memory and device.type == "cuda",
                            persistent_workers=num_workers > 0)
        return TrainData(iter(loader), DecodeAugmentOnDevice(augment, device, seed, rank), **common)
    if backend == "pil":  # (a)
        dataset.transform, batch_transform = MultiViewPILTransform(specs, mean, std), _ToDevice(device)
    else:  # (c)
        dataset.transform = CropOnlyTransform(specs)
        batch_transform = _AugmentOnDevice(BatchedMultiViewAugment(specs, mean, std, crop=False), device, seed, rank)
    loader = DataLoader(SeededDataset(dataset), batch_sampler=sampler, num_workers=num_workers,
                        pin_memory=pin_memory and device.type == "cuda", persistent_workers=num_workers > 0)
    return TrainData(iter(loader), batch_transform, **common)


# ---------------------------------------------------------------------------- augmentation config
# Config key -> (ViewSpec field(s), per_view). Per-view keys take one value per view (a
# scalar is broadcast to all views); the others take one tuple applied to every view.
_PER_VIEW_KEYS = {
    "FLIP_PROB": "flip_prob",
    "JITTER_PROB": "jitter_prob",
    "GRAYSCALE_PROB": "grayscale_prob",
    "BLUR_PROB": "blur_prob",
    "SOLARIZE_PROB": "solarize_prob",
}
_SHARED_KEYS = {
    "CROP_SCALE": ("crop_scale",),
    "CROP_RATIO": ("crop_ratio",),
    "BLUR_SIGMA": ("blur_sigma",),
    "JITTER_STRENGTH": ("brightness", "contrast", "saturation", "hue"),
}


def _per_view_values(key: str, value: Any, num_views: int) -> List[float]:
    if isinstance(value, (int, float)):
        return [float(value)] * num_views
    values = [float(v) for v in value]
    if len(values) != num_views:
        raise ValueError(f"INPUT.AUG.{key} needs {num_views} values (one per view), got {values}")
    return values


def apply_overrides(specs: Sequence[ViewSpec], overrides: Optional[Mapping[str, Any]]) -> List[ViewSpec]:
    """Return ``specs`` with the non-None ``overrides`` (``INPUT.AUG.*`` keys) applied.

    Args:
        specs: one ViewSpec per view.
        overrides: e.g. ``{"GRAYSCALE_PROB": (0, 0), "CROP_SCALE": (0.2, 1.0)}``; keys are
            case-insensitive, None values keep the preset.

    Raises:
        KeyError: on an unknown key (a typo must not silently keep the preset).
    """
    specs = list(specs)
    for raw_key, value in (overrides or {}).items():
        key = raw_key.upper()
        if value is None:
            continue
        if key == "JITTER_IMPL":
            specs = [dataclasses.replace(s, jitter_impl=str(value)) for s in specs]
        elif key in _PER_VIEW_KEYS:
            attr = _PER_VIEW_KEYS[key]
            values = _per_view_values(key, value, len(specs))
            specs = [dataclasses.replace(s, **{attr: v}) for s, v in zip(specs, values)]
        elif key in _SHARED_KEYS:
            fields = _SHARED_KEYS[key]
            if len(fields) == 1:
                update = {fields[0]: tuple(float(v) for v in value)}
            else:
                values = [float(v) for v in value]
                if len(values) != len(fields):
                    raise ValueError(f"INPUT.AUG.{key} needs {len(fields)} values {fields}, got {values}")
                update = dict(zip(fields, values))
            specs = [dataclasses.replace(s, **update) for s in specs]
        else:
            known = sorted(_PER_VIEW_KEYS) + sorted(_SHARED_KEYS) + ["JITTER_IMPL"]
            raise KeyError(f"Unknown augmentation override '{raw_key}'. Known: {', '.join(known)}")
    return specs


def view_specs_from_cfg(cfg) -> List[ViewSpec]:
    """``INPUT.AUG_PRESET``, ``INPUT.IMAGE_SIZE`` and ``INPUT.AUG.*`` -> list[ViewSpec]."""
    return apply_overrides(get_view_specs(cfg.INPUT.AUG_PRESET, cfg.INPUT.IMAGE_SIZE), dict(cfg.INPUT.AUG))


def _resolve_seed(seed: int) -> int:
    if seed >= 0:
        return int(seed)
    # Every rank must shuffle with the same seed, or the shards would overlap.
    s = comm.broadcast_object(int(time.time() * 1e3) % (1 << 31))
    warnings.warn(f"SEED < 0: data seed drawn from the clock ({s}); this run is not reproducible.")
    return s


def build_train_loader(cfg, start_iter: int = 0) -> TrainData:
    """Training data from the config.

    Reads DATASETS.{TRAIN, ROOT, CORRUPT_POLICY, FOLDER_LABELS, TRAIN_SUBSET_*}, INPUT.{BACKEND, AUG_PRESET, IMAGE_SIZE, AUG.*,
    MEAN, STD}, SOLVER.IMS_PER_BATCH (global; per process = // world size), SEED, DEVICE,
    DATALOADER.{NUM_WORKERS, PIN_MEMORY}. World size / rank come from torch.distributed
    when it is initialised.

    Args:
        cfg: config node.
        start_iter: first iteration the iterator yields (resume point).
    """
    specs = view_specs_from_cfg(cfg)
    dataset = build_dataset(cfg.DATASETS.TRAIN, root=cfg.DATASETS.ROOT, train=True,
                            corrupt_policy=cfg.DATASETS.CORRUPT_POLICY, subset=subset_from_cfg(cfg),
                            folder_labels=cfg.DATASETS.FOLDER_LABELS)
    logger.info(dataset_summary(cfg.DATASETS.TRAIN, dataset, cfg.DATASETS.CORRUPT_POLICY))
    return make_train_data(
        dataset, specs=specs, backend=cfg.INPUT.BACKEND, mean=tuple(cfg.INPUT.MEAN), std=tuple(cfg.INPUT.STD),
        global_batch_size=cfg.SOLVER.IMS_PER_BATCH, seed=_resolve_seed(cfg.SEED), rank=comm.get_rank(),
        world_size=comm.get_world_size(), device=get_device(cfg.DEVICE),
        num_workers=cfg.DATALOADER.NUM_WORKERS, pin_memory=cfg.DATALOADER.PIN_MEMORY, start_iter=start_iter)


def dataset_summary(name: str, dataset: Dataset, corrupt_policy: str) -> str:
    """One log line: how many images were found, how many skipped as unreadable, labels or not."""
    skipped = len(getattr(dataset, "corrupt_files", []) or [])
    classes = getattr(dataset, "classes", None) or []
    labels = f"{len(classes)} classes" if classes else "no labels"
    scan = (f"{skipped} skipped as unreadable" if corrupt_policy == "skip" else
            "not scanned for unreadable files (DATASETS.CORRUPT_POLICY 'fail': one stops the run; 'skip' drops them)")
    return (f"Training data {name}: {len(dataset) + skipped} images found, {len(dataset)} used, {scan}; "
            f"{labels} ({type(dataset).__name__}).")


# ---------------------------------------------------------------------------- evaluation
class InMemoryEvalLoader:
    """Finite iterable of ``(float [B,3,S,S] normalised, int64 [B])`` over an in-memory set, in order.

    The evaluation geometry of PROTOCOLS.md s.1 / s.3 (``geometry.resize_centre_crop``: shorter
    side to ``resize``, centre crop ``image_size``), the same function as the benchmark's
    ``LabelledSplit.eval_batches``: the training kNN monitor and ``tools/benchmark.py`` see
    the same pixels.
    """

    def __init__(self, dataset: InMemoryImageDataset, image_size: int, mean: Sequence[float], std: Sequence[float],
                 batch_size: int, indices: Optional[torch.Tensor] = None, resize: int = 0) -> None:
        self.dataset, self.image_size, self.batch_size = dataset, int(image_size), int(batch_size)
        self.resize = int(resize) if resize > 0 else self.image_size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.indices = torch.arange(len(dataset)) if indices is None else indices

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self.indices), self.batch_size):
            idx = self.indices[start: start + self.batch_size]
            x = resize_centre_crop(self.dataset.images.index_select(0, idx), self.image_size, self.resize)
            yield (x - self.mean) / self.std, self.dataset.targets.index_select(0, idx)


def make_eval_loader(dataset: Dataset, *, image_size: int, resize: int, mean: Sequence[float], std: Sequence[float],
                     batch_size: int, num_workers: int = 0, rank: int = 0, world_size: int = 1) -> Iterable:
    """Evaluation batches ``(float [B,3,S,S] normalised, int64 [B])`` on the CPU, dataset order.

    In-memory sets take the fast tensor path (:class:`InMemoryEvalLoader`); file datasets use
    ``build_eval_transform(image_size, resize, mean, std)`` (resize shorter side to ``resize``,
    centre-crop ``image_size``) in DataLoader workers. With ``world_size > 1`` rank r gets the
    strided shard ``r::world_size`` (no padding, so shards may differ in size by one).
    """
    shard = torch.arange(rank, len(dataset), world_size)
    if isinstance(dataset, InMemoryImageDataset):
        return InMemoryEvalLoader(dataset, image_size, mean, std, batch_size, shard, resize=resize)
    dataset.transform = build_eval_transform(image_size, resize, mean, std)
    subset = dataset if world_size == 1 else torch.utils.data.Subset(dataset, shard.tolist())
    return DataLoader(subset, batch_size=batch_size, shuffle=False, drop_last=False, num_workers=num_workers)


def build_eval_loader(cfg, name: str, distributed: bool = False) -> Iterable:
    """Evaluation loader of dataset ``name`` (e.g. DATASETS.KNN_TRAIN) from the config.

    Reads DATASETS.{ROOT, CORRUPT_POLICY, FOLDER_LABELS}, INPUT.{IMAGE_SIZE, EVAL_RESIZE, MEAN, STD},
    BENCHMARK.CROP_FRACTION, TEST.IMS_PER_BATCH, DATALOADER.NUM_WORKERS. ``distributed=True``
    shards by rank. The geometry is the benchmark's (``geometry.eval_resize``).
    A bare name (``cifar10``) means its test split; use ``*_train`` for a memory bank.
    """
    dataset = build_dataset(name, root=cfg.DATASETS.ROOT, train=False, corrupt_policy=cfg.DATASETS.CORRUPT_POLICY,
                            folder_labels=cfg.DATASETS.FOLDER_LABELS)
    rank, world = (comm.get_rank(), comm.get_world_size()) if distributed else (0, 1)
    resize = eval_resize(cfg.INPUT.IMAGE_SIZE, cfg.BENCHMARK.CROP_FRACTION, cfg.INPUT.EVAL_RESIZE)
    return make_eval_loader(dataset, image_size=cfg.INPUT.IMAGE_SIZE, resize=resize,
                            mean=tuple(cfg.INPUT.MEAN), std=tuple(cfg.INPUT.STD), batch_size=cfg.TEST.IMS_PER_BATCH,
                            num_workers=cfg.DATALOADER.NUM_WORKERS, rank=rank, world_size=world)
