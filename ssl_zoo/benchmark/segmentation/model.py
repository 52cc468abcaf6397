"""BYOL's FCN for semantic segmentation (App. D.4, after MoCo App. A.5).

The backbone's conv5 is dilated (stride 1, dilation 2), so the output stride is half the
backbone's: 16 for a ResNet-50, 4 for a CIFAR-stem ResNet (stride 8). Then two 3x3
convolutions of 256 channels with dilation 6, each followed by BN + ReLU, and a 1x1
classifier whose logits are bilinearly upsampled to the input size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssl_zoo.benchmark.dense.backbone import check_resnet, dilate_last_stage, feature_stride

__all__ = ["FCNHead", "FCN", "build_fcn"]


class FCNHead(nn.Module):
    """``[B, in_channels, h, w] -> [B, num_classes, h, w]``: 2 x (3x3 conv d6 + BN + ReLU), 1x1 conv."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 256, dilation: int = 6) -> None:
        super().__init__()
        layers = []
        for c_in in (in_channels, channels):
            layers += [nn.Conv2d(c_in, channels, 3, padding=dilation, dilation=dilation, bias=False),
                       nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        self.convs = nn.Sequential(*layers)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.convs(x))


class FCN(nn.Module):
    """Backbone features -> :class:`FCNHead` -> logits upsampled to the input: ``[B, 3, H, W] -> [B, K, H, W]``.

    Attributes:
        output_stride: input pixels per cell of the head's (pre-upsampling) logits.
    """

    def __init__(self, backbone: nn.Module, head: FCNHead, output_stride: int) -> None:
        super().__init__()
        self.backbone, self.head, self.output_stride = backbone, head, output_stride

    def logits_lowres(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.forward_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.logits_lowres(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


def build_fcn(backbone: nn.Module, num_classes: int, channels: int = 256, dilation: int = 6) -> FCN:
    """Dilate ``backbone``'s conv5 (in place) and put BYOL's head on it; the stride is measured, not assumed."""
    check_resnet(backbone)
    dilate_last_stage(backbone, 2)
    head = FCNHead(backbone.out_dim, num_classes, channels, dilation)
    return FCN(backbone, head, feature_stride(backbone))
