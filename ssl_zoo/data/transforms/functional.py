"""Vectorised image ops with one parameter per sample (the batched augmentation kernels).

Every op takes float images ``x: [B, 3, H, W]`` in [0, 1] and per-sample parameters of
shape ``[B]``, and reproduces ``torchvision.transforms.functional``'s single-image tensor op
on each sample (same formulas, same clamping), so one call augments a whole batch with
independent random parameters. Pure functions: no randomness except in the two
``sample_*`` helpers, which take an explicit ``torch.Generator``.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "rgb_to_grayscale",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_saturation",
    "adjust_hue",
    "adjust_brightness_contrast_saturation",
    "rgb_to_hsv",
    "hsv_to_rgb",
    "gaussian_kernel1d",
    "gaussian_blur",
    "solarize",
    "hflip",
    "normalize",
    "sample_resized_crop_params",
    "resize_weights",
    "resized_crop",
    "sparse_resize_pays",
    "resized_crop_per_sample",
]

# ITU-R 601-2 luma, as torchvision (and TF) use; PIL's "L" uses 299/587/114 / 1000.
_LUMA = (0.2989, 0.587, 0.114)


def _per_sample(factor: Tensor, x: Tensor) -> Tensor:
    """``[B]`` -> ``[B, 1, 1, 1]`` on ``x``'s device and dtype."""
    return factor.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def _blend(img1: Tensor, img2: Tensor, ratio: Tensor) -> Tensor:
    """torchvision's ``_blend``: ``(r * img1 + (1 - r) * img2).clamp(0, 1)``; ratio ``[B,1,1,1]``."""
    return (ratio * img1 + (1.0 - ratio) * img2).clamp_(0.0, 1.0)


def rgb_to_grayscale(x: Tensor) -> Tensor:
    """Luma 0.2989 R + 0.587 G + 0.114 B.

    Args:
        x: ``[B, 3, H, W]``.

    Returns:
        ``[B, 1, H, W]`` (expand to 3 channels for a grayscale RGB image).
    """
    r, g, b = x.unbind(dim=-3)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(-3)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    """``clamp(f * x)`` per sample (blend with black). x ``[B,3,H,W]``, factor ``[B]`` >= 0."""
    return _blend(x, torch.zeros((), dtype=x.dtype, device=x.device), _per_sample(factor, x))


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    """Blend with the per-sample mean of the grayscale image. x ``[B,3,H,W]``, factor ``[B]``."""
    mean = rgb_to_grayscale(x).mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(x, mean, _per_sample(factor, x))


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    """Blend with the grayscale image (0 = gray, 1 = identity). x ``[B,3,H,W]``, factor ``[B]``."""
    return _blend(x, rgb_to_grayscale(x), _per_sample(factor, x))


def adjust_brightness_contrast_saturation(x: Tensor, factor: Tensor, op: Tensor, inplace: bool = False) -> Tensor:
    """One of brightness (op 0), contrast (1) or saturation (2) per sample, in one pass.

    All three are ``_blend(x, ref, f) = clamp(f x + (1 - f) ref)`` with ref = 0, the
    grayscale mean, or the grayscale image, so a colour-jitter slot where each sample draws
    a different op costs one blend over the batch: ``clamp(f x + t)`` with the per-sample
    offset ``t = gray (1 - f) [op = 2] + (1 - f) mean [op = 1]``. The 0/1 factors are exact,
    so every sample gets torchvision's rounding; the grayscale image (and its mean) is only
    formed when some sample needs it. Samples with factor 1 are unchanged exactly.

    Args:
        x: ``[B, 3, H, W]``.
        factor: ``[B]``.
        op: int ``[B]`` in {0, 1, 2}.
        inplace: overwrite and return ``x`` (saves an allocation when the caller owns it).
    """
    op = op.to(factor.device)
    moved = factor != 1.0
    sat, con = (op == 2) & moved, (op == 1) & moved
    t = None
    if bool(sat.any()) or bool(con.any()):  # parameters usually live on the CPU: no device sync
        one_minus = 1.0 - factor.to(x.dtype)
        gray = rgb_to_grayscale(x)  # [B, 1, H, W], before x is overwritten
        mean = gray.mean(dim=(-3, -2, -1), keepdim=True) if bool(con.any()) else None
        t = gray.mul_(_per_sample(one_minus * sat.to(x.dtype), x))
        if mean is not None:
            t.add_(_per_sample(one_minus * con.to(x.dtype), x) * mean)
    f = _per_sample(factor, x)
    y = x.mul_(f) if inplace else x * f
    if t is not None:
        y.add_(t)
    return y.clamp_(0.0, 1.0)


def _hue_sextant(x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Per pixel: hue in sextants (6 h, in [-1, 5)), max channel and chroma (max - min).

    Same branches as torchvision's ``_rgb2hsv`` (after Pillow): red max -> (g - b) / cr,
    else green max -> 2 + (b - r) / cr, else 4 + (r - g) / cr; gray pixels (cr = 0) get 0.
    Branches are selected with 0/1 weights (torch.where is far slower on CPU).
    """
    r, g, b = x.unbind(dim=-3)
    maxc = torch.maximum(torch.maximum(r, g), b)
    cr = maxc - torch.minimum(torch.minimum(r, g), b)
    is_r = (maxc == r).to(x.dtype)
    is_g = (1.0 - is_r) * (maxc == g).to(x.dtype)
    is_b = 1.0 - is_r - is_g
    num = is_r * (g - b) + is_g * ((b - r) + 2.0 * cr) + is_b * ((r - g) + 4.0 * cr)
    # cr = 0 implies num = 0; any positive divisor gives hue 0 there.
    h6 = num / cr.clamp(min=torch.finfo(x.dtype).tiny)
    return h6, maxc, cr


def _sextant_to_rgb(h6: Tensor, maxc: Tensor, cr: Tensor) -> Tensor:
    """HSV -> RGB from hue in sextants (any real: taken mod 6), v = max and v s = cr.

    A channel with hue centre c (R 0, G 2, B 4) equals v while the circular distance d
    from h to c is <= 1, falls linearly to v - cr at d = 2 and stays there: the closed
    form of torchvision's six-sector ``_hsv2rgb`` (equal up to float rounding), without
    building and contracting a [6, 3, ...] stack.
    """
    h6 = torch.remainder(h6, 6.0)
    channels = []
    for centre in (0.0, 2.0, 4.0):
        d = (h6 - centre).abs_()
        d = torch.minimum(d, 6.0 - d)
        channels.append(maxc - cr * (d - 1.0).clamp_(0.0, 1.0))
    return torch.stack(channels, dim=-3)


def rgb_to_hsv(x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """torchvision's ``_rgb2hsv``: ``[B,3,H,W]`` in [0,1] -> h, s, v each ``[B,H,W]`` in [0,1]."""
    h6, maxc, cr = _hue_sextant(x)
    s = cr / maxc.clamp(min=torch.finfo(x.dtype).tiny)  # maxc = 0 implies cr = 0
    return torch.remainder(h6 / 6.0, 1.0), s, maxc


def hsv_to_rgb(h: Tensor, s: Tensor, v: Tensor) -> Tensor:
    """Inverse of ``rgb_to_hsv``: h, s, v ``[B,H,W]`` -> ``[B,3,H,W]`` (torchvision ``_hsv2rgb``)."""
    return _sextant_to_rgb(h * 6.0, v, v * s)


def adjust_hue(x: Tensor, factor: Tensor) -> Tensor:
    """Rotate hue by ``factor`` turns per sample (torchvision ``adjust_hue`` on float tensors).

    RGB -> HSV, h <- (h + factor) mod 1, HSV -> RGB, fused so that s is never formed
    (equal to torchvision up to float rounding, ~1e-6). The way back uses that a channel
    with hue centre c (R 0, G 2, B 4 sextants) is ``v - cr clamp(d - 1, 0, 1)`` for the
    circular distance d = 3 - | |h - c| - 3 | (h in [0, 6)), which is
    ``clamp(2 min - v + cr | |h - c| - 3 |, min, v)``: three channels in a few
    full-tensor ops (the op count matters: the kernel is memory-bound).

    Args:
        x: ``[B, 3, H, W]`` in [0, 1].
        factor: ``[B]`` in [-0.5, 0.5].

    Returns:
        ``[B, 3, H, W]``.
    """
    maxc = x.amax(dim=-3, keepdim=True)  # [B, 1, H, W]
    minc = x.amin(dim=-3, keepdim=True)
    cr = maxc - minc
    r, g, b = x.split(1, dim=-3)
    # Branch weights 0/1 (torch.where and bool masks are slower on CPU): sign(c - max) + 1 is
    # 1 where channel c is the max, else 0 (c - max is exactly 0 only when equal); red wins
    # ties, then green.
    is_r = (r - maxc).sign_().add_(1.0)
    is_g = (g - maxc).sign_().add_(1.0).sub_(is_r).clamp_(min=0.0)
    is_b = 1.0 - is_r - is_g
    # Each pixel takes exactly one branch: 1 * value + 0 * others is exact.
    num = (g - b).mul_(is_r)
    num.addcmul_((b - r).add_(cr, alpha=2.0), is_g).addcmul_((r - g).add_(cr, alpha=4.0), is_b)
    # cr = 0 implies num = 0; any positive divisor gives hue 0 there.
    h6 = num.div_(cr.clamp(min=torch.finfo(x.dtype).tiny))
    h6.add_(_per_sample(6.0 * factor.to(x.dtype), x))
    # h mod 6 via floor (torch.remainder is not vectorised); the map below is continuous and
    # 6-periodic, so a result rounded onto 6 instead of 0 is harmless.
    h6.sub_(h6.div(6.0).floor_().mul_(6.0))
    d = (h6 - _HUE_CENTRES.to(device=x.device, dtype=x.dtype)).abs_().sub_(3.0).abs_()  # [B, 3, H, W]
    out = d.mul_(cr).add_(minc.mul(2.0).sub_(maxc))
    return out.clamp_(min=minc, max=maxc)


_HUE_CENTRES = torch.tensor([0.0, 2.0, 4.0]).view(1, 3, 1, 1)


def gaussian_kernel1d(kernel_size: int, sigma: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Normalised 1-D Gaussian taps per sample (torchvision ``_get_gaussian_kernel1d``).

    Args:
        kernel_size: odd number of taps K.
        sigma: ``[B]`` standard deviations in pixels.

    Returns:
        ``[B, K]``, each row summing to 1.
    """
    half = (kernel_size - 1) * 0.5
    t = torch.linspace(-half, half, steps=kernel_size, dtype=dtype, device=sigma.device)
    pdf = torch.exp(-0.5 * (t[None, :] / sigma.to(dtype)[:, None]).pow(2))
    return pdf / pdf.sum(dim=1, keepdim=True)


def gaussian_blur(x: Tensor, kernel_size: int, sigma: Tensor) -> Tensor:
    """Gaussian blur with a per-sample sigma (torchvision ``gaussian_blur`` with [K, K], [s, s]).

    torchvision convolves with the 2-D kernel outer(k, k) after reflect padding; the
    Gaussian is separable, so one vertical and one horizontal depthwise pass (grouped
    conv, one group per (sample, channel)) give the same result in O(K) instead of O(K^2).

    Args:
        x: ``[B, C, H, W]``; needs ``kernel_size // 2 < min(H, W)`` (reflect padding).
        kernel_size: odd K.
        sigma: ``[B]``.

    Returns:
        ``[B, C, H, W]``.
    """
    b, c, hgt, wid = x.shape
    if b == 0:
        return x
    taps = gaussian_kernel1d(kernel_size, sigma.to(x.device), dtype=x.dtype)  # [B, K]
    taps = taps.repeat_interleave(c, dim=0)  # [B*C, K]: one filter per (sample, channel)
    pad = kernel_size // 2
    xp = F.pad(x, (pad, pad, pad, pad), mode="reflect").reshape(1, b * c, hgt + 2 * pad, wid + 2 * pad)
    y = F.conv2d(xp, taps.view(b * c, 1, kernel_size, 1), groups=b * c)
    y = F.conv2d(y, taps.view(b * c, 1, 1, kernel_size), groups=b * c)
    return y.view(b, c, hgt, wid)


def solarize(x: Tensor, threshold: float = 0.5) -> Tensor:
    """``x -> 1 - x`` where ``x >= threshold`` (torchvision ``solarize`` on float images).

    With the usual threshold 0.5 this is exactly ``min(x, 1 - x)``, one cheap op.
    """
    if threshold == 0.5:
        return torch.minimum(x, 1.0 - x)
    return torch.where(x >= threshold, 1.0 - x, x)


def hflip(x: Tensor) -> Tensor:
    """Mirror the last (width) axis. ``[..., H, W]`` -> same."""
    return x.flip(-1)


def normalize(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """``(x - mean) / std`` per channel, in place on ``x`` ``[B, 3, H, W]``."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return x.sub_(m).div_(s)


def sample_resized_crop_params(
    batch_size: int,
    height: int,
    width: int,
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
        height, width: image size (all images of the batch share it).
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
    u = torch.rand(batch_size, attempts, 2, **f64)
    target_area = height * width * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[..., 1])
    w = torch.round(torch.sqrt(target_area * aspect))  # round-half-even, as Python's round()
    h = torch.round(torch.sqrt(target_area / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # argmax returns the first maximum
    found = fits.any(dim=1)
    w = w.gather(1, first).squeeze(1)
    h = h.gather(1, first).squeeze(1)

    # torchvision's fallback: the whole image, clipped to the ratio range, centred.
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fw, fh = int(round(height * max(ratio))), height
    else:
        fw, fh = width, height
    w = torch.where(found, w, torch.full_like(w, fw))
    h = torch.where(found, h, torch.full_like(h, fh))

    # Uniform integer offsets, like torch.randint(0, H - h + 1).
    u_pos = torch.rand(batch_size, 2, **f64)
    top = torch.minimum(torch.floor(u_pos[:, 0] * (height - h + 1)), height - h)
    left = torch.minimum(torch.floor(u_pos[:, 1] * (width - w + 1)), width - w)
    top = torch.where(found, top, torch.div(height - h, 2, rounding_mode="floor"))
    left = torch.where(found, left, torch.div(width - w, 2, rounding_mode="floor"))
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
