"""ResNet backbones as feature-map encoders for dense prediction.

Strides are measured on the backbone, never assumed: a torchvision-style ResNet-50 has
``layer4`` at stride 32, a CIFAR-stem ResNet (3x3/1 stem, no max-pool) at stride 8.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["check_resnet", "feature_stride", "dilate_last_stage"]


def check_resnet(backbone: nn.Module) -> None:
    """Raise ``ValueError`` unless ``backbone`` is a ResNet with ``layer4`` and ``forward_features``."""
    if not (hasattr(backbone, "layer4") and hasattr(backbone, "forward_features") and hasattr(backbone, "out_dim")):
        raise ValueError(f"dense tasks need an ssl_zoo ResNet backbone (layer1..layer4, forward_features, out_dim); "
                         f"got {type(backbone).__name__} (MODEL.BACKBONE.NAME)")


@torch.no_grad()
def feature_stride(backbone: nn.Module, probe: int = 64) -> int:
    """Input pixels per ``forward_features`` cell, measured on a ``probe``-pixel input (a power of two)."""
    was_training = backbone.training
    backbone.eval()
    p = next(backbone.parameters())
    out = backbone.forward_features(torch.zeros(1, 3, probe, probe, device=p.device, dtype=p.dtype))
    backbone.train(was_training)
    return probe // out.shape[-1]


def dilate_last_stage(backbone: nn.Module, dilation: int = 2) -> nn.Module:
    """conv5 (``layer4``) with stride 1 and its 3x3 convolutions dilated (BYOL App. D.4, in place).

    Every 3x3 convolution of ``layer4`` gets dilation (and padding) ``dilation`` and stride 1,
    and the projection shortcut stride 1, so the output stride halves (32 -> 16 for an R50)
    and the receptive field is kept. The paper says "the 3x3 convolutions in the conv5 blocks
    use dilation 2 and stride 1" (as detectron2's RES5_DILATION); torchvision's
    ``replace_stride_with_dilation`` instead leaves the first block's conv at dilation 1.
    Weights are untouched, so pretrained checkpoints load before or after.
    """
    check_resnet(backbone)
    for m in backbone.layer4.modules():
        if isinstance(m, nn.Conv2d):
            if m.kernel_size == (3, 3):
                m.dilation, m.padding, m.stride = (dilation, dilation), (dilation, dilation), (1, 1)
            elif m.kernel_size == (1, 1):
                m.stride = (1, 1)
    return backbone
