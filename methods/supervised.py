"""Supervised baseline: the same backbone trained with labels (cross-entropy).

Not a self-supervised method: it is the "supervised" row every SSL evaluation table
compares against (BYOL Table 1 / Table 3, SimCLR Fig. 1), trained by ``tools/train_net.py``
with the same backbone, data pipeline, optimizer and schedule as the SSL methods, so
``tools/benchmark.py`` evaluates all three rows (SSL, random init, supervised) the same way.

Every augmented view is classified; the loss is the mean cross-entropy over views, so
two views are a batch of 2B labelled crops.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ssl_zoo.config import CfgNode
from ssl_zoo.modeling.backbones.build import build_backbone_from_cfg
from ssl_zoo.modeling.method import METHOD_REGISTRY, SSLMethod


@METHOD_REGISTRY.register()
class Supervised(SSLMethod):
    """Backbone + linear classifier, cross-entropy on the dataset's labels.

    Args:
        backbone: ``[B,3,H,W] -> [B, backbone.out_dim]``.
        num_classes: C of the linear classifier ``[B, out_dim] -> [B, C]``.
        label_smoothing: of the cross-entropy (0 = plain).
    """

    def __init__(self, backbone: nn.Module, num_classes: int, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if num_classes <= 0:
            raise ValueError(f"SUPERVISED.NUM_CLASSES must be > 0, got {num_classes}")
        self.backbone = backbone
        self.classifier = nn.Linear(backbone.out_dim, num_classes)
        self.label_smoothing = float(label_smoothing)

    @classmethod
    def add_config(cls, cfg) -> None:
        cfg.SUPERVISED = CfgNode()
        cfg.SUPERVISED.NUM_CLASSES = 1000  # classes of DATASETS.TRAIN (10 for CIFAR-10)
        cfg.SUPERVISED.LABEL_SMOOTHING = 0.0

    @classmethod
    def from_config(cls, cfg) -> dict:
        c = cfg.SUPERVISED
        return dict(backbone=build_backbone_from_cfg(cfg), num_classes=c.NUM_CLASSES, label_smoothing=c.LABEL_SMOOTHING)

    def forward(self, views: List[torch.Tensor], labels: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        if labels is None:
            raise ValueError("The Supervised method needs labels: DATASETS.TRAIN must be a labelled dataset "
                             "(got a batch without labels).")
        losses, correct = [], 0
        for v in views:  # one forward per view: per-view BN statistics, as the SSL methods
            features = self.backbone(v)
            logits = self.classifier(features).float()
            if (labels < 0).any() or (labels >= logits.shape[1]).any():
                raise ValueError(f"labels must be in [0, {logits.shape[1]}) (SUPERVISED.NUM_CLASSES); got "
                                 f"min {int(labels.min())}, max {int(labels.max())}")
            losses.append(F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing))
            correct += (logits.argmax(1) == labels).sum()
        loss = torch.stack(losses).mean()
        acc = 100.0 * correct.float() / (labels.numel() * len(views))
        return {"loss": loss, "ce_loss": loss.detach(), "train_top1": acc.detach(), "embedding": features.detach()}
