"""Any timm model as an ssl_zoo backbone (``"timm:<model name>"``).

timm is imported lazily: it is slow to import and only needed for these names.
"""
from __future__ import annotations

import timm
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def set_bn_hyperparams_(module: nn.Module, momentum: float, eps: float) -> nn.Module:
    """Set ``momentum`` and ``eps`` of every BatchNorm (any subclass) in ``module``, in place."""
    for m in module.modules():
        if isinstance(m, _BatchNorm):
            m.momentum = momentum
            m.eps = eps
    return module


def build_timm_backbone(model_name: str, *, bn_momentum: float = 0.1, bn_eps: float = 1e-5, **timm_kwargs) -> nn.Module:
    """Create ``timm.create_model(model_name, pretrained=False, num_classes=0)``.

    With ``num_classes=0`` timm's forward returns the pooled pre-logits features, so the
    model itself is the backbone: ``[B, 3, H, W] -> [B, out_dim]``. ``out_dim`` is timm's
    ``head_hidden_size`` when the model has one (e.g. MobileNetV3's conv head, whose
    output is wider than ``num_features``), else ``num_features``.

    Args:
        model_name: any name accepted by ``timm.create_model`` (e.g. ``"resnet10t"``).
        bn_momentum, bn_eps: set on every BatchNorm of the model (PROTOCOLS.md s.2).
        **timm_kwargs: forwarded to ``timm.create_model`` (e.g. ``drop_path_rate``).
    """
    if not timm.is_model(model_name):
        raise KeyError(f"timm has no model named '{model_name}' (see timm.list_models()).")
    model = timm.create_model(model_name, pretrained=False, num_classes=0, **timm_kwargs)
    set_bn_hyperparams_(model, bn_momentum, bn_eps)
    out_dim = getattr(model, "head_hidden_size", None) or model.num_features
    model.out_dim = int(out_dim)
    return model
