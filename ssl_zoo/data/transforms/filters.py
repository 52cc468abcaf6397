"""Per-sample spatial filters on batches: the Gaussian blur (torchvision v2 keeps it in "misc";
it changes no geometry, only filters, hence its own small module).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["gaussian_kernel1d", "gaussian_blur", "support_radius"]


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


# Taps whose total weight is below this (per pass, both sides) are skipped: for images in [0, 1]
# the result moves by <= 2 x 1e-7, the size of float32 rounding (torchvision's own float32 blur
# is ~1e-7 from the exact float64 one) and 1/40,000 of an 8-bit step.
_TAIL_MASS = 1e-7


def support_radius(taps: Tensor, tail_mass: float = _TAIL_MASS) -> Tensor:
    """Per row, the smallest radius r such that the taps beyond r weigh <= ``tail_mass`` in all.

    Args:
        taps: ``[B, K]`` symmetric normalised taps (``gaussian_kernel1d``).
        tail_mass: weight that may be left out (both sides together).

    Returns:
        int64 ``[B]`` in [0, K // 2].
    """
    half = taps.shape[1] // 2
    side = taps[:, half + 1:].double()  # distances 1..half
    # outer[:, j] = weight of the taps at distance > j, for j = 0 .. half - 1 (decreasing in j).
    outer = 2.0 * side.flip(1).cumsum(1).flip(1)
    return (outer > tail_mass).sum(dim=1)


def _separable_blur(x: Tensor, taps: Tensor) -> Tensor:
    """Vertical then horizontal depthwise pass, reflect padding. x ``[B,C,H,W]``, taps ``[B, K]``."""
    b, c, hgt, wid = x.shape
    k = taps.shape[1]
    taps = taps.repeat_interleave(c, dim=0)  # [B*C, K]: one filter per (sample, channel)
    pad = k // 2
    xp = F.pad(x, (0, 0, pad, pad), mode="reflect").reshape(1, b * c, hgt + 2 * pad, wid)
    y = F.conv2d(xp, taps.view(b * c, 1, k, 1), groups=b * c)  # [1, B*C, H, W]
    y = F.pad(y, (pad, pad, 0, 0), mode="reflect")
    y = F.conv2d(y, taps.view(b * c, 1, 1, k), groups=b * c)
    return y.view(b, c, hgt, wid)


def gaussian_blur(x: Tensor, kernel_size: int, sigma: Tensor) -> Tensor:
    """Gaussian blur with a per-sample sigma (torchvision ``gaussian_blur`` with [K, K], [s, s]).

    torchvision convolves with the 2-D kernel outer(k, k) after reflect padding of both
    axes; the Gaussian is separable, so one vertical and one horizontal depthwise pass
    (grouped conv, one group per (sample, channel)) give the same result in O(K) instead of
    O(K^2). Each pass pads only its own axis: reflect-padding the columns of the vertically
    blurred image equals blurring the reflect-padded columns (columns are only copied).

    The taps are torchvision's (normalised over all K), but each sample only convolves with
    the taps inside its ``support_radius``: with sigma ~ U[0.1, 2] and K = 23 (BYOL at 224 px)
    the outer taps of most samples weigh < 1e-7 (sigma 0.5 needs 7 taps, sigma 1 needs 13),
    so samples are grouped by radius and each group runs a shorter kernel. The skipped taps
    move the result by <= 2e-7 (float32 rounding level); the tests compare to torchvision at 1e-6.

    Args:
        x: ``[B, C, H, W]``; needs ``kernel_size // 2 < min(H, W)`` (reflect padding).
        kernel_size: odd K.
        sigma: ``[B]``.

    Returns:
        ``[B, C, H, W]``.
    """
    if x.shape[0] == 0:
        return x
    taps = gaussian_kernel1d(kernel_size, sigma.to(x.device), dtype=x.dtype)  # [B, K]
    half = kernel_size // 2
    radius = support_radius(taps).cpu()
    radii = radius.unique().tolist()
    if len(radii) == 1:
        r = radii[0]
        return _separable_blur(x, taps[:, half - r: half + r + 1])
    out = torch.empty_like(x)
    for r in radii:
        idx = (radius == r).nonzero().squeeze(1).to(x.device)
        out.index_copy_(0, idx, _separable_blur(x.index_select(0, idx), taps.index_select(0, idx)[:, half - r: half + r + 1]))
    return out
