"""Batched multi-view augmentation: the fast path, statistically equal to the PIL path.

``BatchedMultiViewAugment`` applies each ``ViewSpec`` to a whole batch at once, on the
batch's device (CPU for the CIFAR quickstart, GPU at ImageNet scale), with EVERY random
parameter drawn per sample from an explicit ``torch.Generator``:

    crop box (torchvision's rejection sampling, vectorised) -> antialiased resize, flip
    folded in (two batched matmuls for small images or on a GPU; on the CPU, large images
    are sliced to each box and resized alone, in uint8 for uint8 inputs) -> colour jitter
    with p, its 4 ops in an independent random order per sample -> grayscale -> Gaussian
    blur (per-sample sigma) -> solarize -> normalise. On the CPU everything after the
    resize runs on cache-sized chunks of samples, and ops whose probability is < 1 only
    touch the samples that draw them.

The kernels live in ``geometry.py`` (crop boxes, resize), ``colour.py`` (jitter, grayscale,
solarize) and ``filters.py`` (blur) and equal torchvision's tensor ops per sample. The
PIL reference (``pil.MultiViewPILTransform``) differs only by PIL's 8-bit arithmetic: it
rounds to uint8 after the resize (two passes) and after every colour op, its grayscale
("L") uses 299/587/114 / 1000, contrast uses the rounded gray mean, and hue is shifted on
8-bit HSV. At equal parameters that is a mean |difference| of ~1/255 (max a few /255);
random streams differ (global RNG in workers vs an explicit generator), distributions do not.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .colour import JITTER_OPS, color_jitter, rgb_to_grayscale, solarize
from .filters import gaussian_blur
from .geometry import resized_crop, resized_crop_per_sample, sample_resized_crop_params, sparse_resize_pays
from .per_sample import apply_where
from .presets import ViewSpec

__all__ = ["ViewParams", "sample_view_params", "augment_view", "BatchedMultiViewAugment", "IMAGENET_MEAN",
           "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ViewParams:
    """Random parameters of one view for a batch of B samples.

    Attributes:
        boxes: int64 ``[B, 4]`` crop boxes (top, left, height, width), or None (no crop).
        flip: bool ``[B]``.
        jitter: bool ``[B]``: colour jitter applied.
        factors: float ``[B, 4]`` brightness, contrast, saturation factors and hue shift.
        order: int64 ``[B, 4]``: ``order[b, k]`` is the jitter op applied in slot k.
        grayscale, blur, solarize: bool ``[B]``.
        sigma: float ``[B]`` blur standard deviations (pixels).
    """

    boxes: Optional[Tensor]
    flip: Tensor
    jitter: Tensor
    factors: Tensor
    order: Tensor
    grayscale: Tensor
    blur: Tensor
    sigma: Tensor
    solarize: Tensor

    def __getitem__(self, index: slice) -> "ViewParams":
        """The parameters of the samples ``index`` (a slice along the batch)."""
        return ViewParams(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[index]
                             for f in fields(self)})

    def to(self, device: Union[str, torch.device]) -> "ViewParams":
        return ViewParams(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
                             for f in fields(self)})


def sample_view_params(
    spec: ViewSpec,
    batch_size: int,
    image_hw: Optional[Union[Tuple[int, int], Tensor]] = None,
    generator: Optional[torch.Generator] = None,
    device: Optional[torch.device] = None,
) -> ViewParams:
    """Draw one view's parameters for ``batch_size`` samples.

    All parameters are always drawn (in a fixed order) whatever the probabilities, so
    changing one probability in an ablation does not reshuffle the other draws.

    Args:
        spec: the view's recipe.
        batch_size: B.
        image_hw: (H, W) of the source images to crop, or int ``[B, 2]`` sizes per image (a
            zero-padded batch of images of different sizes); None = no crop (boxes = None).
        generator: random source; its device is where everything is drawn.
        device: drawing device when ``generator`` is None (default CPU).
    """
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    boxes = None
    if image_hw is not None:
        hgt, wid = (image_hw[:, 0], image_hw[:, 1]) if isinstance(image_hw, Tensor) else image_hw
        boxes = sample_resized_crop_params(batch_size, hgt, wid, spec.crop_scale, spec.crop_ratio,
                                           generator=generator, device=device)
    u = torch.rand(batch_size, 6, generator=generator, device=device)
    ranges = spec.jitter_ranges()
    # A disabled op draws its identity value (factor 1; offset 0 for hue and TF brightness).
    ident = {n: 0.0 if n == "hue" or (n == "brightness" and spec.jitter_impl == "tf") else 1.0 for n in ranges}
    lo = torch.tensor([r[0] if r else ident[n] for n, r in ranges.items()], device=device)
    hi = torch.tensor([r[1] if r else ident[n] for n, r in ranges.items()], device=device)
    factors = lo + (hi - lo) * torch.rand(batch_size, 4, generator=generator, device=device)
    # A uniformly random permutation per sample (torch.randperm(4) in ColorJitter).
    order = torch.rand(batch_size, 4, generator=generator, device=device).argsort(dim=1)
    sigma = spec.blur_sigma[0] + (spec.blur_sigma[1] - spec.blur_sigma[0]) * u[:, 5]
    return ViewParams(
        boxes=boxes,
        flip=u[:, 0] < spec.flip_prob,
        jitter=u[:, 1] < spec.jitter_prob,
        factors=factors,
        order=order,
        grayscale=u[:, 2] < spec.grayscale_prob,
        blur=u[:, 3] < spec.blur_prob,
        sigma=sigma,
        solarize=u[:, 4] < spec.solarize_prob,
    )


# On the CPU the elementwise ops are memory-bound: each one streams the batch through memory.
# Running the whole chain on chunks of this many float bytes per thread (~6 images at 224 px,
# the whole batch at 32 px) keeps a chunk and its temporaries in cache: ~1.5-2x faster per op.
_CPU_CHUNK_BYTES = 4 << 20


def _chunk_size(batch: int, size: int, device: torch.device) -> int:
    """Samples per chunk: the whole batch on a GPU; cache-sized chunks on the CPU."""
    if device.type != "cpu":
        return max(batch, 1)
    return max(1, _CPU_CHUNK_BYTES * torch.get_num_threads() // (3 * size * size * 4))


def augment_view(x: Tensor, spec: ViewSpec, params: ViewParams, mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None, out: Optional[Tensor] = None) -> Tensor:
    """Apply one view's augmentation to a batch.

    Args:
        x: uint8 ``[B, 3, H, W]`` or float in [0, 1]; cropped and resized to ``spec.size`` when
            ``params.boxes`` is set, else already ``spec.size``. Not modified.
        spec: the view's recipe.
        params: from ``sample_view_params``.
        mean, std: if given, normalise the output (fused into the last pass).
        out: optional float ``[B, 3, S, S]`` to write the result into.

    Returns:
        float ``[B, 3, S, S]`` in [0, 1] (normalised if ``mean``/``std`` are given).
    """
    owned = False  # whether x is a fresh tensor that the ops may overwrite
    flipped = params.boxes is not None
    if params.boxes is not None:
        if x.dtype == torch.uint8 and sparse_resize_pays(x, spec.size):
            # Slice each box and resize it in uint8 (PIL-like rounding, as the workers'
            # CropOnlyTransform): only the S x S crops are converted to float, chunk by chunk.
            x = resized_crop_per_sample(x, params.boxes, spec.size, spec.interpolation, flip=params.flip)
        else:
            x = resized_crop(_to_float(x) if x.dtype == torch.uint8 else x, params.boxes, spec.size,
                                spec.interpolation, flip=params.flip)
            x, owned = x.clamp_(0.0, 1.0), True  # bicubic overshoot; PIL clips to uint8 as well
    elif x.shape[-2:] != (spec.size, spec.size):
        raise ValueError(f"Pre-cropped views must be {spec.size}x{spec.size}, got {tuple(x.shape[-2:])}")

    batch = x.shape[0]
    if out is None:
        out = torch.empty((batch, 3, spec.size, spec.size), dtype=torch.float32, device=x.device)
    norm = None
    if mean is not None:
        norm = (torch.tensor(mean, dtype=out.dtype, device=out.device).view(1, -1, 1, 1),
                torch.tensor(std, dtype=out.dtype, device=out.device).view(1, -1, 1, 1))
    ranges = spec.jitter_ranges()
    enabled = torch.tensor([ranges[name] is not None for name in JITTER_OPS], device=params.order.device)
    step = _chunk_size(batch, spec.size, x.device)
    for start in range(0, batch, step):
        sl = slice(start, start + step)
        if x.dtype == torch.uint8:
            xc = torch.div(x[sl], 255.0)  # float32, = x.float() / 255
        else:
            xc = x[sl] if owned else x[sl].clone()  # the ops below work in place
        p = params[sl]
        if not flipped:
            xc = apply_where(xc, p.flip, lambda xs, idx: xs.flip(-1))
        xc = _colour_blur_solarize(xc, spec, p, enabled)
        if norm is None:
            out[sl] = xc
        else:
            torch.sub(xc, norm[0], out=out[sl]).div_(norm[1])
    return out


def _colour_blur_solarize(x: Tensor, spec: ViewSpec, params: ViewParams, enabled: Tensor) -> Tensor:
    """Jitter, grayscale, blur and solarize of a float batch that may be overwritten."""
    x = color_jitter(x, params.jitter, params.factors, params.order, enabled, impl=spec.jitter_impl)
    x = apply_where(x, params.grayscale, lambda xs, idx: xs.copy_(rgb_to_grayscale(xs).expand(-1, 3, -1, -1)))

    # Reflect padding needs K // 2 < side; only tiny images hit this guard.
    k = min(spec.blur_kernel_size, 2 * spec.size - 1)
    if k % 2 == 0:
        k -= 1
    x = apply_where(x, params.blur, lambda xs, idx: gaussian_blur(xs, k, params.sigma[idx]))
    # Solarize at 0.5 is min(x, 1 - x), only on the selected samples.
    return apply_where(x, params.solarize, lambda xs, idx: solarize(xs, 0.5))


def _to_float(images: Tensor) -> Tensor:
    """uint8 [0, 255] -> float32 [0, 1]; float input is assumed in [0, 1] and copied."""
    if images.dtype == torch.uint8:
        return torch.div(images, 255.0)  # one pass, = images.float() / 255
    return images.to(torch.float32, copy=True)


class BatchedMultiViewAugment:
    """Multi-view augmentation of a whole batch with per-sample random parameters.

    Args:
        specs: one ``ViewSpec`` per view.
        mean, std: normalisation applied last (ImageNet statistics, PROTOCOLS.md s.1).
        crop: True = inputs are same-size full images, cropped here per sample and view
            (CIFAR); False = inputs are already cropped per view (``pil.CropOnlyTransform``).

    Call:
        ``images``: crop=True: uint8 (or float [0, 1]) ``[B, 3, H, W]``, with ``image_sizes``
        (int ``[B, 2]``) when the images have different sizes and are zero-padded to H x W
        (each box is drawn inside its image; the resize never reads the padding). crop=False: a list
        of V tensors ``[B, 3, S, S]``, or ``[B, V, 3, S, S]``, or one ``[B, 3, S, S]`` used for
        every view. ``generator``: a torch.Generator on the images' device or on CPU (CPU
        draws are moved; a CPU generator also avoids device syncs). None = global RNG.
        Returns a list of V float ``[B, 3, S, S]`` normalised tensors on the input's device.

    Examples:
        >>> aug = BatchedMultiViewAugment(get_view_specs("byol_cifar", 32))
        >>> v1, v2 = aug(uint8_images, torch.Generator().manual_seed(0))
    """

    def __init__(self, specs: Sequence[ViewSpec], mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, crop: bool = True) -> None:
        self.specs = list(specs)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.crop = crop

    def _split_views(self, images) -> List[Tensor]:
        if isinstance(images, (list, tuple)):
            views = list(images)
        elif images.dim() == 5:
            views = list(images.unbind(dim=1))
        else:
            views = [images] * len(self.specs)
        if len(views) != len(self.specs):
            raise ValueError(f"Got {len(views)} pre-cropped views for {len(self.specs)} view specs")
        return views

    def sample_params(self, batch_size: int, image_hw: Optional[Union[Tuple[int, int], Tensor]],
                      generator: Optional[torch.Generator] = None,
                      device: Optional[torch.device] = None) -> List[ViewParams]:
        """Draw every view's parameters (view by view, in spec order)."""
        return [sample_view_params(s, batch_size, image_hw, generator, device) for s in self.specs]

    @torch.no_grad()
    def __call__(self, images: Union[Tensor, Sequence[Tensor]], generator: Optional[torch.Generator] = None,
                 image_sizes: Optional[Tensor] = None) -> List[Tensor]:
        if self.crop:
            if not isinstance(images, Tensor) or images.dim() != 4:
                raise ValueError("crop=True expects one [B, 3, H, W] tensor of same-size images")
            device = images.device
            batch, image_hw = images.shape[0], tuple(images.shape[-2:])
            if image_sizes is not None:  # images of different sizes, zero-padded to [H, W]: crop inside each
                image_hw = image_sizes.to(device if generator is None else generator.device)
            # Large uint8 images stay uint8 (each box is sliced and resized alone); otherwise the
            # batch is converted to float once and shared by the views' dense resizes.
            sparse = [images.dtype == torch.uint8 and sparse_resize_pays(images, s.size) for s in self.specs]
            shared = None if all(sparse) else _to_float(images)
            sources = [images if sp else shared for sp in sparse]
        else:
            raw = self._split_views(images)
            device = raw[0].device
            batch, image_hw = raw[0].shape[0], None
            sources = [v if v.dtype == torch.uint8 else v.to(torch.float32) for v in raw]
        draw_device = generator.device if generator is not None else device
        params = self.sample_params(batch, image_hw, generator, draw_device)
        threads = torch.get_num_threads()
        # Shard only large images (chunked): small ones (CIFAR) run faster as whole-batch ops.
        large = any(_chunk_size(batch, s.size, device) < batch for s in self.specs)
        if device.type != "cpu" or threads == 1 or batch < 2 * threads or not large:
            return [augment_view(x, spec, p, self.mean, self.std) for spec, p, x in zip(self.specs, params, sources)]
        return self._run_sharded(sources, params, batch, threads)

    def _run_sharded(self, sources: List[Tensor], params: List[ViewParams], batch: int, threads: int) -> List[Tensor]:
        """CPU, T > 1 threads: T Python threads (torch ops release the GIL) each augment a shard
        of the batch with one torch thread. The per-sample crops and the small cache-sized
        chunks parallelise poorly inside each op; across samples they scale. Parameters are
        drawn beforehand, so the result is the same as in one piece."""
        outs = [torch.empty((batch, 3, s.size, s.size), dtype=torch.float32, device=sources[0].device)
                for s in self.specs]
        bounds = [batch * k // threads for k in range(threads + 1)]

        def work(k: int) -> None:
            torch.set_num_threads(1)  # this thread's OpenMP setting
            sl = slice(bounds[k], bounds[k + 1])
            for spec, p, x, out in zip(self.specs, params, sources, outs):
                augment_view(x[sl], spec, p[sl], self.mean, self.std, out=out[sl])

        try:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(work, range(threads)))
        finally:
            torch.set_num_threads(threads)  # MKL's thread count is process-wide: restore it
        return outs

    def __repr__(self) -> str:
        views = "\n  ".join(repr(s) for s in self.specs)
        return f"{type(self).__name__}(crop={self.crop}, mean={self.mean}, std={self.std},\n  {views})"

