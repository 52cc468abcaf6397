"""Per-sample spatial filters on batches: the Gaussian blur (torchvision v2 keeps it in "misc";
it changes no geometry, only filters, hence its own small module).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["gaussian_kernel1d", "gaussian_blur"]


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
