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


def adjust_brightness_contrast_saturation(x: Tensor, factor: Tensor, op: Tensor) -> Tensor:
    """One of brightness (op 0), contrast (1) or saturation (2) per sample, in one pass.

    All three are ``_blend(x, ref, f)`` with ref = 0, the grayscale mean, or the grayscale
    image, so a colour-jitter slot where each sample draws a different op costs one
    blend over the batch. Samples with factor 1 are unchanged exactly (1 x + 0 ref = x).

    Args:
        x: ``[B, 3, H, W]``.
        factor: ``[B]``.
        op: int ``[B]`` in {0, 1, 2}.
    """
    gray = rgb_to_grayscale(x)  # [B, 1, H, W]
    mean = gray.mean(dim=(-3, -2, -1), keepdim=True)
    op = op.to(x.device).view(-1, 1, 1, 1)
    # 0/1 weights instead of torch.where (much slower on CPU); exact: 1 a + 0 b = a.
    ref = (op == 2).to(x.dtype) * gray + (op == 1).to(x.dtype) * mean
    return _blend(x, ref, _per_sample(factor, x))


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
    (equal to torchvision up to float rounding, ~1e-7).

    Args:
        x: ``[B, 3, H, W]`` in [0, 1].
        factor: ``[B]`` in [-0.5, 0.5].

    Returns:
        ``[B, 3, H, W]``.
    """
    h6, maxc, cr = _hue_sextant(x)
    shift = 6.0 * factor.to(device=x.device, dtype=x.dtype).view(-1, 1, 1)
    return _sextant_to_rgb(h6 + shift, maxc, cr)


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
    O(S (H + S) W) per channel: trivial at 32 px, fine on GPU at ImageNet size.

    Args:
        x: float ``[B, C, H, W]``.
        boxes: ``[B, 4]`` (top, left, height, width) in pixels.
        size: output side S.
        interpolation: "bilinear" or "bicubic".
        flip: optional bool ``[B]``: mirror those outputs horizontally.

    Returns:
        ``[B, C, S, S]`` (bicubic may overshoot [0, 1]: clamp afterwards).
    """
    b, c, hgt, wid = x.shape
    boxes = boxes.to(x.device)
    wy = resize_weights(boxes[:, 0], boxes[:, 2], hgt, size, interpolation).to(x.dtype)  # [B, S, H]
    wx = resize_weights(boxes[:, 1], boxes[:, 3], wid, size, interpolation, flip).to(x.dtype)  # [B, S, W]
    t = torch.bmm(x.reshape(b, c * hgt, wid), wx.transpose(1, 2))  # [B, C*H, S]
    return torch.matmul(wy[:, None], t.view(b, c, hgt, size))  # [B, C, S, S]
