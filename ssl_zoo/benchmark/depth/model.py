"""FCRN depth decoder (Laina et al. 2016, "Deeper Depth Prediction with Fully Convolutional
Residual Networks"), as in the official code (iro-cp/FCRN-DepthPrediction,
``tensorflow/models/{fcrn,network}.py``).

``res5 -> 1x1 conv (out_dim/2) + BN -> 4 up-projections (512, 256, 128, 64) -> 3x3 conv -> 1``.
Each up-projection doubles the resolution, so an R50 (stride 32) predicts at 1/2 of the
input: 304x228 -> 160x128. The number of blocks is derived from the measured backbone
stride (one per factor 2 down to stride 2); the channels default to ``out_dim/4`` halving
per block, which is exactly 1024 -> 512, 256, 128, 64 for an R50.

*Fast up-convolution* (``unpool_as_conv``): unpooling followed by a 5x5 convolution, computed
as four small convolutions on the low-resolution map, A 3x3, B 2x3, C 3x2, D 2x2, whose
outputs are interleaved: ``Y[2i, 2j] = A``, ``Y[2i+1, 2j] = B``, ``Y[2i, 2j+1] = C``,
``Y[2i+1, 2j+1] = D``. The zero padding is the official one (TF ``pad`` before a VALID conv):
A "SAME" (1 on every side), B top 1 / left 1 / right 1, C top 1 / bottom 1 / left 1,
D top 1 / left 1. BN follows the interleaved map.

*Up-projection* (``up_project``): branch 1 = fast up-conv + BN + ReLU, then a 3x3 conv + BN;
branch 2 = fast up-conv + BN; output = ReLU(branch 1 + branch 2).
Convolutions followed by BN have no bias (the official ones do; BN's shift absorbs it).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ssl_zoo.benchmark.dense.backbone import check_resnet, feature_stride

__all__ = ["FastUpConv", "UpProjection", "FCRN", "build_fcrn", "decoder_channels"]


class FastUpConv(nn.Module):
    """``[B, C_in, h, w] -> [B, C_out, 2h, 2w]``: four convolutions interleaved, then BN (and ReLU)."""

    # (kernel (rows, cols), F.pad (left, right, top, bottom)) of A, B, C, D as the official TF code.
    SPECS = (((3, 3), (1, 1, 1, 1)), ((2, 3), (1, 1, 1, 0)), ((3, 2), (1, 0, 1, 1)), ((2, 2), (1, 0, 1, 0)))

    def __init__(self, in_channels: int, out_channels: int, relu: bool) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(in_channels, out_channels, k, bias=False) for k, _ in self.SPECS)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b, c, d = (conv(F.pad(x, pad)) for conv, (_, pad) in zip(self.convs, self.SPECS))
        n, ch, h, w = a.shape
        top = torch.stack((a, c), dim=-1).reshape(n, ch, h, 2 * w)      # even rows: A, C, A, C, ...
        bottom = torch.stack((b, d), dim=-1).reshape(n, ch, h, 2 * w)   # odd rows:  B, D, B, D, ...
        y = self.bn(torch.stack((top, bottom), dim=-2).reshape(n, ch, 2 * h, 2 * w))
        return F.relu(y) if self.relu else y


class UpProjection(nn.Module):
    """Laina et al.'s up-projection block: ``[B, C_in, h, w] -> [B, C_out, 2h, 2w]``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up1 = FastUpConv(in_channels, out_channels, relu=True)
        self.conv = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.up2 = FastUpConv(in_channels, out_channels, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(self.up1(x))) + self.up2(x))


def decoder_channels(out_dim: int, stride: int) -> tuple:
    """``out_dim/4`` halving per block, ``log2(stride/2)`` blocks (R50: 2048, 32 -> (512, 256, 128, 64))."""
    n = int(round(math.log2(stride / 2)))
    if n < 1 or 2 ** (n + 1) != stride:
        raise ValueError(f"backbone stride {stride}: need a power of two >= 4 to predict at 1/2 resolution")
    return tuple(max(1, out_dim // 2 ** (k + 2)) for k in range(n))


class FCRN(nn.Module):
    """Backbone -> 1x1 conv + BN -> up-projections -> 3x3 conv: ``[B, 3, H, W] -> [B, 1, H/2, W/2]``.

    (With ``H`` not a multiple of the backbone stride the output is ``ceil(H/stride) * 2**blocks``,
    e.g. 228 -> 128 for an R50, as the official model.)
    """

    def __init__(self, backbone: nn.Module, channels: Sequence[int], stride: int) -> None:
        super().__init__()
        check_resnet(backbone)
        self.backbone = backbone
        mid = backbone.out_dim // 2  # the official "layer1": 2048 -> 1024
        self.reduce = nn.Sequential(nn.Conv2d(backbone.out_dim, mid, 1, bias=False), nn.BatchNorm2d(mid))
        blocks, c_in = [], mid
        for c_out in channels:
            blocks.append(UpProjection(c_in, c_out))
            c_in = c_out
        self.decoder = nn.Sequential(*blocks)
        self.predict = nn.Conv2d(c_in, 1, 3, padding=1)
        self.output_stride = stride // 2 ** len(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predict(self.decoder(self.reduce(self.backbone.forward_features(x))))


def build_fcrn(backbone: nn.Module, channels: Optional[Sequence[int]] = None) -> FCRN:
    """FCRN on ``backbone`` with ``channels`` per up-projection (None/empty: :func:`decoder_channels`)."""
    check_resnet(backbone)
    stride = feature_stride(backbone)
    channels = tuple(channels) if channels else decoder_channels(backbone.out_dim, stride)
    return FCRN(backbone, channels, stride)
