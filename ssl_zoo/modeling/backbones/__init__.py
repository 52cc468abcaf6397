"""Encoders: images ``[B, 3, H, W]`` -> representation ``[B, out_dim]``."""
from ssl_zoo.modeling.backbones.build import (
    BACKBONE_REGISTRY,
    build_backbone,
    build_backbone_from_cfg,
)
from ssl_zoo.modeling.backbones.resnet import RESNET_SPECS, ResNet
from ssl_zoo.modeling.backbones.timm_wrapper import build_timm_backbone

__all__ = [
    "BACKBONE_REGISTRY",
    "RESNET_SPECS",
    "ResNet",
    "build_backbone",
    "build_backbone_from_cfg",
    "build_timm_backbone",
]
