"""Per-sample geometry on batches: random-resized-crop boxes and the antialiased crop + resize
(with the horizontal flip folded in).

Equal per sample to torchvision's ``RandomResizedCrop.get_params`` (in distribution) and to
``torchvision.transforms.functional.resized_crop(..., antialias=True)`` (up to float
rounding). Pure functions: no randomness except in ``sample_resized_crop_params``, which
takes an explicit ``torch.Generator``.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["eval_resize", "resize_centre_crop", "sample_resized_crop_params", "resize_weights", "resized_crop", "sparse_resize_pays",
           "resized_crop_per_sample"]


def sample_resized_crop_params(
    batch_size: int,
    height: Union[int, Tensor],
    width: Union[int, Tensor],
    scale: Sequence[float],
    ratio: Sequence[float],
    generator: Optional[torch.Generator] = None,
    device: Optional[torch.device] = None,
    attempts: int = 10,
) -> Tensor:
    """Crop boxes distributed as torchvision ``RandomResizedCrop.get_params``, per sample.

    torchvision tries up to 10 (area ~ U[scale] * H W, log-ratio ~ U[log ratio]) pairs and
    keeps the first whose rounded box fits, else falls back to a centre crop of the whole
    image clipped to the ratio range. Here all attempts are drawn at once ``[B, attempts]``
    and the first fitting one is selected with an argmax, which gives the same distribution.

    Args:
        batch_size: B.
        height, width: image size: ints (all images of the batch share it) or int ``[B]``
            tensors, one size per image (decoded files of different sizes). The random draws
            do not depend on the sizes, so equal sizes given either way give the same boxes.
        scale: (min, max) area fraction.
        ratio: (min, max) aspect ratio w / h.
        generator: source of randomness (its device is used when ``device`` is None).
        device: where to draw.
        attempts: rejection-sampling attempts before the fallback.

    Returns:
        ``[B, 4]`` int64 boxes (top, left, height, width).
    """
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    f64 = dict(dtype=torch.float64, device=device, generator=generator)
    # Sizes as float64 [B] (exact for any image size); ints broadcast.
    hgt = torch.as_tensor(height, dtype=torch.float64, device=device).expand(batch_size)
    wid = torch.as_tensor(width, dtype=torch.float64, device=device).expand(batch_size)
    u = torch.rand(batch_size, attempts, 2, **f64)
    target_area = (hgt * wid)[:, None] * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[..., 1])
    w = torch.round(torch.sqrt(target_area * aspect))  # round-half-even, as Python's round()
    h = torch.round(torch.sqrt(target_area / aspect))
    fits = (w > 0) & (w <= wid[:, None]) & (h > 0) & (h <= hgt[:, None])
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # argmax returns the first maximum
    found = fits.any(dim=1)
    w = w.gather(1, first).squeeze(1)
    h = h.gather(1, first).squeeze(1)

    # torchvision's fallback: the whole image, clipped to the ratio range, centred.
    in_ratio = wid / hgt
    lo_r, hi_r = min(ratio), max(ratio)
    fw = torch.where(in_ratio > hi_r, torch.round(hgt * hi_r), wid)
    fh = torch.where(in_ratio < lo_r, torch.round(wid / lo_r), hgt)
    w = torch.where(found, w, fw)
    h = torch.where(found, h, fh)

    # Uniform integer offsets, like torch.randint(0, H - h + 1).
    u_pos = torch.rand(batch_size, 2, **f64)
    top = torch.minimum(torch.floor(u_pos[:, 0] * (hgt - h + 1)), hgt - h)
    left = torch.minimum(torch.floor(u_pos[:, 1] * (wid - w + 1)), wid - w)
    top = torch.where(found, top, torch.div(hgt - h, 2, rounding_mode="floor"))
    left = torch.where(found, left, torch.div(wid - w, 2, rounding_mode="floor"))
    return torch.stack((top, left, h, w), dim=1).to(torch.int64)


def _filter(t: Tensor, interpolation: str) -> Tensor:
    """Resampling kernels of PIL / torch's antialiased resize: triangle, or Keys cubic a = -0.5."""
    t = t.abs()
    if interpolation == "bilinear":
        return (1.0 - t).clamp_(min=0.0)
    if interpolation == "bicubic":
        # Both pieces vanish at t = 1 and the outer one at t = 2, so clamping t into each
        # piece's interval selects the piece without masks.
        a = -0.5
        tn = t.clamp(max=1.0)
        tf = t.clamp(1.0, 2.0)
        near = ((a + 2.0) * tn - (a + 3.0)) * tn * tn + 1.0
        far = (((tf - 5.0) * tf + 8.0) * tf - 4.0) * a
        return near + far
    raise ValueError(f"interpolation must be 'bilinear' or 'bicubic', got {interpolation!r}")


def resize_weights(start: Tensor, length: Tensor, in_size: int, out_size: int, interpolation: str,
                   flip: Optional[Tensor] = None) -> Tensor:
    """Dense 1-D resampling matrices of the crop [start, start + length) -> out_size pixels.

    PIL's ``ImagingResample`` / torch's ``interpolate(antialias=True)`` weights: output
    pixel u is centred at c = (u + 0.5) scale in the crop (scale = length / out_size); taps
    j get filter((j + 0.5 - c) / max(scale, 1)) -- the kernel is stretched when shrinking,
    which is the antialiasing -- restricted to the crop and renormalised to sum 1 (PIL's
    edge handling). When enlarging, bilinear equals ``interpolate(antialias=False)``.

    Args:
        start, length: ``[B]`` crop offset and extent along this axis (pixels).
        in_size: image extent along the axis.
        out_size: output extent.
        interpolation: "bilinear" or "bicubic".
        flip: optional bool ``[B]``: reverse the output order (horizontal flip).

    Returns:
        ``[B, out_size, in_size]`` float32 rows summing to 1.
    """
    start = start.to(torch.float32)
    length = length.to(torch.float32)
    scale = (length / out_size)[:, None, None]
    stretch = scale.clamp(min=1.0)
    u = torch.arange(out_size, dtype=torch.float32, device=start.device)[None, :]
    if flip is not None:
        u = u + flip.to(device=start.device, dtype=torch.float32)[:, None] * (out_size - 1 - 2 * u)
    centre = (u[..., None] + 0.5) * scale  # [B, out, 1]
    j = torch.arange(in_size, dtype=torch.float32, device=start.device)[None, None, :] - start[:, None, None]
    inside = ((j >= 0) & (j < length[:, None, None])).to(torch.float32)  # [B, 1, in]
    w = _filter((j + 0.5 - centre) / stretch, interpolation) * inside
    return w / w.sum(dim=-1, keepdim=True)


def sparse_resize_pays(x: Tensor, size: int) -> bool:
    """Whether ``resized_crop_per_sample`` beats the dense matmuls of ``resized_crop`` for ``x``.

    The dense matrices cost ``C (H W S + H S^2)`` MACs per sample whatever the box (0.2 G
    for a 375x500 image -> 224); slicing the box and resizing it with torch's separable,
    sparse antialiased kernels costs ~``C S (h + S) taps`` plus ~30 us of per-sample
    overhead. On the CPU the dense path only wins for small images (CIFAR: 0.2 M MACs);
    on a GPU one big batched matmul beats B small kernel launches.
    """
    hgt, wid = x.shape[-2:]
    return x.device.type == "cpu" and x.shape[-3] * (hgt * wid * size + hgt * size * size) > 4_000_000


def resized_crop_per_sample(
    x: Tensor,
    boxes: Tensor,
    size: int,
    interpolation: str = "bicubic",
    flip: Optional[Tensor] = None,
) -> Tensor:
    """Crop each sample to its box (a slice) and resize only that: ``resized_crop``'s sparse twin.

    Per sample ``interpolate(x[b, :, box], size, antialias=True)`` -- exactly torchvision's
    tensor ``resized_crop(..., antialias=True)``. Float inputs give ``resized_crop``'s result
    up to float rounding; uint8 inputs use torch's integer kernels (fixed-point weights,
    rounded and clipped to uint8 after each pass like PIL's resize: within ~1/255 of the
    float result on natural images), so only the ``S x S`` output is ever converted to float.

    Args:
        x: uint8 or float ``[B, C, H, W]``.
        boxes: ``[B, 4]`` (top, left, height, width) in pixels.
        size: output side S.
        interpolation: "bilinear" or "bicubic".
        flip: optional bool ``[B]``: mirror those outputs horizontally.

    Returns:
        ``[B, C, S, S]`` of ``x``'s dtype (float bicubic may overshoot [0, 1]: clamp afterwards).
    """
    if interpolation not in ("bilinear", "bicubic"):
        raise ValueError(f"interpolation must be 'bilinear' or 'bicubic', got {interpolation!r}")
    b, c = x.shape[:2]
    out = torch.empty((b, c, size, size), dtype=x.dtype, device=x.device)
    flips = [False] * b if flip is None else flip.tolist()
    for i, (top, left, h, w) in enumerate(boxes.tolist()):
        y = F.interpolate(x[i: i + 1, :, top: top + h, left: left + w], size=(size, size), mode=interpolation,
                          antialias=True, align_corners=False)[0]
        out[i] = y.flip(-1) if flips[i] else y
    return out


def resized_crop(
    x: Tensor,
    boxes: Tensor,
    size: int,
    interpolation: str = "bicubic",
    flip: Optional[Tensor] = None,
) -> Tensor:
    """Crop a box per sample and resize it to ``size x size`` as two batched matmuls.

    Resizing is separable: ``out[b, c] = Wy[b] @ x[b, c] @ Wx[b]^T`` with the per-sample
    matrices of ``resize_weights``, i.e. PIL's / torchvision's antialiased resize (bicubic
    a = -0.5), so the result equals ``torchvision.transforms.functional.resized_crop(...,
    antialias=True)`` per sample up to float rounding, and PIL's uint8 resize up to its
    rounding. A horizontal flip is folded into Wx for free. Dense matrices cost
    O(S (H + S) W) per channel: trivial at 32 px, fine on GPU at ImageNet size; for large
    images on the CPU (``sparse_resize_pays``) each box is sliced and resized alone
    (``resized_crop_per_sample``, same result up to float rounding).

    Args:
        x: float ``[B, C, H, W]``.
        boxes: ``[B, 4]`` (top, left, height, width) in pixels.
        size: output side S.
        interpolation: "bilinear" or "bicubic".
        flip: optional bool ``[B]``: mirror those outputs horizontally.

    Returns:
        ``[B, C, S, S]`` (bicubic may overshoot [0, 1]: clamp afterwards).
    """
    if sparse_resize_pays(x, size):
        return resized_crop_per_sample(x, boxes, size, interpolation, flip)
    b, c, hgt, wid = x.shape
    boxes = boxes.to(x.device)
    wy = resize_weights(boxes[:, 0], boxes[:, 2], hgt, size, interpolation).to(x.dtype)  # [B, S, H]
    wx = resize_weights(boxes[:, 1], boxes[:, 3], wid, size, interpolation, flip).to(x.dtype)  # [B, S, W]
    t = torch.bmm(x.reshape(b, c * hgt, wid), wx.transpose(1, 2))  # [B, C*H, S]
    return torch.matmul(wy[:, None], t.view(b, c, hgt, size))  # [B, C, S, S]


# ---------------------------------------------------------------------------- evaluation geometry
def eval_resize(image_size: int, crop_fraction: float, resize: int = 0) -> int:
    """Shorter side before the evaluation centre crop (PROTOCOLS.md s.1 / s.3).

    ``resize`` if > 0, else ``round(image_size / crop_fraction)``: 256 for 224 at 0.875 (the
    ImageNet protocol), 37 for CIFAR's 32. The training kNN monitor and every benchmark
    protocol use this one geometry, so one checkpoint gives one number.
    """
    if resize > 0:
        return int(resize)
    if not 0.0 < crop_fraction <= 1.0:
        raise ValueError(f"BENCHMARK.CROP_FRACTION must be in (0, 1], got {crop_fraction}")
    return int(round(image_size / crop_fraction))


def resize_centre_crop(images: Tensor, image_size: int, resize: int) -> Tensor:
    """Evaluation view of a batch: shorter side to ``resize`` (bicubic, antialiased), centre crop.

    The batched equivalent of ``T.Resize(resize, BICUBIC) + T.CenterCrop(image_size)`` (the
    file-set path, ``pil.build_eval_transform``): the longer side is truncated as torchvision
    does, the crop offset rounded as ``CenterCrop``. At 32 px with crop fraction 0.875 the
    image is upsampled to 37 and its central 32 x 32 kept (about 75% of the area).

    Args:
        images: uint8 (or float in [0, 1]) ``[B, 3, H, W]``.
        image_size: S.
        resize: shorter side before the crop (>= S).

    Returns:
        float ``[B, 3, S, S]`` in [0, 1] (not normalised).
    """
    x = images.float().div_(255) if images.dtype == torch.uint8 else images.float()
    h, w = x.shape[-2:]
    if min(h, w) != resize:
        size = (resize, int(resize * w / h)) if h <= w else (int(resize * h / w), resize)
        x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp_(0, 1)
    h, w = x.shape[-2:]
    top, left = int(round((h - image_size) / 2.0)), int(round((w - image_size) / 2.0))
    return x[..., top:top + image_size, left:left + image_size]
