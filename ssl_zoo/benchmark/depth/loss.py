"""The reverse Huber ("berHu") loss of Laina et al. 2016, Eq. 1 (after Owen 2007; Zwald & Lambert-Lacroix 2012).

For a residual ``x = prediction - target`` at a valid pixel::

    B(x) = |x|                    if |x| <= c
           (x^2 + c^2) / (2c)     otherwise,        c = 0.2 * max_i |x_i|

with the max over every valid pixel of the batch. B is continuous at ``|x| = c`` (both
branches give c) and so is its derivative (1 and x/c). ``c`` is a per-batch constant (no
gradient flows through the max). The loss is the mean of B over the valid pixels.

A widely copied PyTorch port computes ``c = 0.2 * max(pred - target)`` (no absolute value,
and over invalid pixels too) and adds ``diff**2`` instead of ``(x^2 + c^2) / 2c`` for the
large residuals (evaluation-anchors s.2.5); this implementation follows the paper.
"""
from __future__ import annotations

import torch

__all__ = ["berhu_loss"]


def berhu_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, c_fraction: float = 0.2) -> torch.Tensor:
    """Mean berHu over ``valid`` pixels. ``pred``, ``target``, ``valid`` (bool) share a shape, e.g. ``[B, 1, H, W]``.

    Returns 0 (with a gradient path) when no pixel is valid or every residual is 0.
    """
    x = (pred - target)[valid]
    if x.numel() == 0:
        return pred.sum() * 0.0
    ax = x.abs()
    c = (c_fraction * ax.max()).detach()
    if c <= 0:
        return ax.mean()  # every residual is 0: B(0) = 0
    return torch.where(ax <= c, ax, (x * x + c * c) / (2 * c)).mean()
