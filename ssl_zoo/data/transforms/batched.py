"""Batched multi-view augmentation: the fast path, statistically equal to the PIL path.

``BatchedMultiViewAugment`` applies each ``ViewSpec`` to a whole batch at once, on the
batch's device (CPU for the CIFAR quickstart, GPU at ImageNet scale), with EVERY random
parameter drawn per sample from an explicit ``torch.Generator``:

    crop box (torchvision's rejection sampling, vectorised) -> antialiased resize as two
    batched matmuls, flip folded in -> colour jitter with p, its 4 ops in an independent
    random order per sample -> grayscale -> Gaussian blur (per-sample sigma) -> solarize
    -> normalise.

The kernels live in ``functional.py`` and equal torchvision's tensor ops per sample. The
PIL reference (``pil.MultiViewPILTransform``) differs only by PIL's 8-bit arithmetic: it
rounds to uint8 after the resize (two passes) and after every colour op, its grayscale
("L") uses 299/587/114 / 1000, contrast uses the rounded gray mean, and hue is shifted on
8-bit HSV. At equal parameters that is a mean |difference| of ~1/255 (max a few /255);
random streams differ (global RNG in workers vs an explicit generator), distributions do not.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from . import functional as TF
from .presets import ViewSpec

__all__ = ["ViewParams", "sample_view_params", "augment_view", "BatchedMultiViewAugment",
           "batched_augment_from_cfg", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Colour-jitter op ids, as in torchvision's ColorJitter (fn_idx 0..3).
_BRIGHTNESS, _CONTRAST, _SATURATION, _HUE = range(4)
_JITTER_NAMES = ("brightness", "contrast", "saturation", "hue")


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

    def to(self, device: Union[str, torch.device]) -> "ViewParams":
        return ViewParams(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
                             for f in fields(self)})


def sample_view_params(
    spec: ViewSpec,
    batch_size: int,
    image_hw: Optional[Tuple[int, int]] = None,
    generator: Optional[torch.Generator] = None,
    device: Optional[torch.device] = None,
) -> ViewParams:
    """Draw one view's parameters for ``batch_size`` samples.

    All parameters are always drawn (in a fixed order) whatever the probabilities, so
    changing one probability in an ablation does not reshuffle the other draws.

    Args:
        spec: the view's recipe.
        batch_size: B.
        image_hw: (H, W) of the source images to crop; None = no crop (boxes = None).
        generator: random source; its device is where everything is drawn.
        device: drawing device when ``generator`` is None (default CPU).
    """
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    boxes = None
    if image_hw is not None:
        boxes = TF.sample_resized_crop_params(batch_size, image_hw[0], image_hw[1], spec.crop_scale,
                                              spec.crop_ratio, generator=generator, device=device)
    u = torch.rand(batch_size, 6, generator=generator, device=device)
    ranges = spec.jitter_ranges()
    lo = torch.tensor([r[0] if r else (0.0 if n == "hue" else 1.0) for n, r in ranges.items()], device=device)
    hi = torch.tensor([r[1] if r else (0.0 if n == "hue" else 1.0) for n, r in ranges.items()], device=device)
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


def _apply_where(x: Tensor, mask: Tensor, fn) -> Tensor:
    """``x[mask] = fn(x[mask], idx)`` without touching the other samples; returns x.

    The indices are computed on ``mask``'s device (CPU when the generator is on CPU, so
    no device sync) and only the selected samples are processed.
    """
    idx = mask.nonzero().squeeze(1)
    n = idx.numel()
    if n == 0:
        return x
    if n == x.shape[0]:
        return fn(x, idx)
    idx_dev = idx.to(x.device)
    return x.index_copy_(0, idx_dev, fn(x.index_select(0, idx_dev), idx))


def augment_view(x: Tensor, spec: ViewSpec, params: ViewParams) -> Tensor:
    """Apply one view's augmentation to a float batch.

    Args:
        x: float ``[B, 3, H, W]`` in [0, 1]; cropped and resized to ``spec.size`` when
            ``params.boxes`` is set, else already ``spec.size`` (not modified in place).
        spec: the view's recipe.
        params: from ``sample_view_params``.

    Returns:
        float ``[B, 3, S, S]`` in [0, 1] (not normalised).
    """
    if params.boxes is not None:
        x = TF.resized_crop(x, params.boxes, spec.size, spec.interpolation, flip=params.flip)
        x = x.clamp_(0.0, 1.0)  # bicubic overshoot; PIL clips to uint8 as well
    else:
        if x.shape[-2:] != (spec.size, spec.size):
            raise ValueError(f"Pre-cropped views must be {spec.size}x{spec.size}, got {tuple(x.shape[-2:])}")
        x = _apply_where(x.clone(), params.flip, lambda xs, idx: xs.flip(-1))  # ops below work in place

    # Colour jitter, vectorised over the per-sample random order: in slot k every jittered
    # sample gets op order[b, k]. Brightness/contrast/saturation are all blends, done in
    # one pass with per-sample (factor, op) (factor 1 = untouched); the costly hue goes
    # through the subset of samples whose slot-k op is hue.
    ranges = spec.jitter_ranges()
    enabled = torch.tensor([ranges[name] is not None for name in _JITTER_NAMES], device=params.order.device)
    if bool(params.jitter.any()):
        for slot in range(4):
            op = params.order[:, slot]
            active = params.jitter & enabled[op]
            blend = active & (op != _HUE)
            if bool(blend.any()):
                factor = torch.where(blend, params.factors.gather(1, op[:, None]).squeeze(1), 1.0)
                x = TF.adjust_brightness_contrast_saturation(x, factor, op.clamp(max=_SATURATION))
            x = _apply_where(x, active & (op == _HUE), lambda xs, idx: TF.adjust_hue(xs, params.factors[idx, _HUE]))

    x = _apply_where(x, params.grayscale, lambda xs, idx: TF.rgb_to_grayscale(xs).expand(-1, 3, -1, -1).contiguous())

    # Reflect padding needs K // 2 < side; only tiny images hit this guard.
    k = min(spec.blur_kernel_size, 2 * spec.size - 1)
    if k % 2 == 0:
        k -= 1
    x = _apply_where(x, params.blur, lambda xs, idx: TF.gaussian_blur(xs, k, params.sigma[idx]))

    if bool(params.solarize.any()):
        # min(x, max(1 - x, keep)): keep = 1 leaves a sample as is, keep = 0 gives
        # min(x, 1 - x) = solarize at 0.5 -- exact, and no slow torch.where.
        keep = (~params.solarize).to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
        x = torch.minimum(x, torch.maximum(1.0 - x, keep))
    return x


def _to_float(images: Tensor) -> Tensor:
    """uint8 [0, 255] -> float32 [0, 1]; float input is assumed in [0, 1] and copied."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    return images.to(torch.float32, copy=True)


class BatchedMultiViewAugment:
    """Multi-view augmentation of a whole batch with per-sample random parameters.

    Args:
        specs: one ``ViewSpec`` per view.
        mean, std: normalisation applied last (ImageNet statistics, PROTOCOLS.md s.1).
        crop: True = inputs are same-size full images, cropped here per sample and view
            (CIFAR); False = inputs are already cropped per view (``pil.CropOnlyTransform``).

    Call:
        ``images``: crop=True: uint8 (or float [0, 1]) ``[B, 3, H, W]``. crop=False: a list
        of V tensors ``[B, 3, S, S]``, or ``[B, V, 3, S, S]``, or one ``[B, 3, S, S]`` used for
        every view. ``generator``: a torch.Generator on the images' device or on CPU (CPU
        draws are moved; a CPU generator also avoids device syncs). None = global RNG.
        Returns a list of V float ``[B, 3, S, S]`` normalised tensors on the input's device.

    Examples:
        >>> aug = BatchedMultiViewAugment(get_view_specs("byol_cifar", 32, {}))
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

    def sample_params(self, batch_size: int, image_hw: Optional[Tuple[int, int]],
                      generator: Optional[torch.Generator] = None,
                      device: Optional[torch.device] = None) -> List[ViewParams]:
        """Draw every view's parameters (view by view, in spec order)."""
        return [sample_view_params(s, batch_size, image_hw, generator, device) for s in self.specs]

    @torch.no_grad()
    def __call__(self, images: Union[Tensor, Sequence[Tensor]],
                 generator: Optional[torch.Generator] = None) -> List[Tensor]:
        if self.crop:
            if not isinstance(images, Tensor) or images.dim() != 4:
                raise ValueError("crop=True expects one [B, 3, H, W] tensor of same-size images")
            device = images.device
            batch, image_hw = images.shape[0], tuple(images.shape[-2:])
            sources = [_to_float(images)] * len(self.specs)  # converted once, shared by all views
        else:
            raw = self._split_views(images)
            device = raw[0].device
            batch, image_hw = raw[0].shape[0], None
            sources = [_to_float(v) for v in raw]
        draw_device = generator.device if generator is not None else device
        outputs = []
        for spec, params, x in zip(self.specs, self.sample_params(batch, image_hw, generator, draw_device), sources):
            y = augment_view(x, spec, params)
            outputs.append(TF.normalize(y, self.mean, self.std))
        return outputs

    def __repr__(self) -> str:
        views = "\n  ".join(repr(s) for s in self.specs)
        return f"{type(self).__name__}(crop={self.crop}, mean={self.mean}, std={self.std},\n  {views})"


def batched_augment_from_cfg(cfg, crop: bool = True) -> BatchedMultiViewAugment:
    """``INPUT.*`` -> BatchedMultiViewAugment (``crop`` is decided by the data loader)."""
    from .presets import view_specs_from_cfg

    return BatchedMultiViewAugment(view_specs_from_cfg(cfg), cfg.INPUT.MEAN, cfg.INPUT.STD, crop=crop)
