"""Backbone registry and builders.

A backbone maps images ``[B, 3, H, W]`` to the representation ``y`` ``[B, out_dim]``
(global-average-pooled, BYOL Sec. 3.3) and exposes ``out_dim: int``.

Names: ``resnet10/18/34/50/101/152/200``, the same with a ``_cifar`` suffix (CIFAR stem
forced on), and ``timm:<model name>`` for any timm model.
"""
from __future__ import annotations

import functools

from torch import nn

from ssl_zoo.modeling.backbones.resnet import RESNET_SPECS, resnet
from ssl_zoo.modeling.backbones.timm_wrapper import build_timm_backbone
from ssl_zoo.utils.registry import Registry

BACKBONE_REGISTRY = Registry("BACKBONE")
BACKBONE_REGISTRY.__doc__ = (
    "Functions (*, width, base_width, cifar_stem, zero_init_residual, bn_momentum, bn_eps) -> nn.Module "
    "with `out_dim`, mapping [B,3,H,W] -> [B,out_dim]."
)

TIMM_PREFIX = "timm:"


def _register_resnets() -> None:
    for depth_name in RESNET_SPECS:
        BACKBONE_REGISTRY.register(functools.partial(resnet, depth_name), name=depth_name)
        # "<name>_cifar": the 3x3/1 stem without max-pool for 32 px images.
        BACKBONE_REGISTRY.register(
            functools.partial(_cifar_resnet, depth_name), name=f"{depth_name}_cifar"
        )


def _cifar_resnet(depth_name: str, **kwargs) -> nn.Module:
    kwargs["cifar_stem"] = True
    return resnet(depth_name, **kwargs)


_register_resnets()


def build_backbone(
    name: str,
    *,
    width: int = 1,
    base_width: int = 64,
    cifar_stem: bool = False,
    zero_init_residual: bool = False,
    bn_momentum: float = 0.1,
    bn_eps: float = 1e-5,
) -> nn.Module:
    """Build a backbone by name.

    Args:
        name: a ``BACKBONE_REGISTRY`` name (``"resnet50"``, ``"resnet18_cifar"``, ...)
            or ``"timm:<model name>"`` (timm model with ``num_classes=0``, random init).
        width: ResNet width multiplier applied to every convolution (BYOL Table 1;
            R50 2x -> ``out_dim`` 4096).
        base_width: ResNet channels of the first stage before the multiplier (64 default).
        cifar_stem: ResNet 3x3/1 stem without max-pool (32 px inputs).
        zero_init_residual: zero-init the last BN gamma of each residual branch.
        bn_momentum: PyTorch BN momentum (= 1 - decay) set on every BN (PROTOCOLS.md s.2: 0.1).
        bn_eps: BN epsilon set on every BN (PROTOCOLS.md s.2: 1e-5).

    Returns:
        ``nn.Module`` with ``out_dim: int``; forward ``[B, 3, H, W] -> [B, out_dim]``.

    Raises:
        KeyError: unknown name (the message lists the registered ones).
        ValueError: a ResNet-only option (width, base_width, cifar_stem,
            zero_init_residual) given for a timm model, which would silently be ignored.
    """
    if name.startswith(TIMM_PREFIX):
        resnet_only = {
            "width": (width, 1),
            "base_width": (base_width, 64),
            "cifar_stem": (cifar_stem, False),
            "zero_init_residual": (zero_init_residual, False),
        }
        bad = [k for k, (v, default) in resnet_only.items() if v != default]
        if bad:
            raise ValueError(
                f"Backbone '{name}': options {bad} only apply to ssl_zoo ResNets; timm models keep "
                "their own architecture and initialisation (leave them at their defaults)."
            )
        return build_timm_backbone(name[len(TIMM_PREFIX):], bn_momentum=bn_momentum, bn_eps=bn_eps)
    fn = BACKBONE_REGISTRY.get(name)
    return fn(
        width=width,
        base_width=base_width,
        cifar_stem=cifar_stem,
        zero_init_residual=zero_init_residual,
        bn_momentum=bn_momentum,
        bn_eps=bn_eps,
    )


def build_backbone_from_cfg(cfg) -> nn.Module:
    """``build_backbone`` with arguments from ``cfg.MODEL.BACKBONE.*`` and ``cfg.MODEL.BN.*``."""
    b = cfg.MODEL.BACKBONE
    return build_backbone(
        b.NAME,
        width=b.WIDTH,
        base_width=b.BASE_WIDTH,
        cifar_stem=b.CIFAR_STEM,
        zero_init_residual=b.ZERO_INIT_RESIDUAL,
        bn_momentum=cfg.MODEL.BN.MOMENTUM,
        bn_eps=cfg.MODEL.BN.EPS,
    )
