"""Barlow Twins: Self-Supervised Learning via Redundancy Reduction (Zbontar et al., ICML 2021,
arXiv 2103.03230).

Algorithm 1 of the paper, in this module's names::

    z1, z2 = projector(backbone(y1)), projector(backbone(y2))      [N, D]
    c = standardise(z1)^T standardise(z2) / N                      [D, D] (global batch)
    L = sum_i (1 - c_ii)^2 + lambda sum_{i != j} c_ij^2           lambda = 0.0051

Paper Sec. 3 / official code: projector 8192-8192-8192 (Linear-BN-ReLU twice, then Linear),
LARS, batch 2048, lr 0.2 x B/256 for weights and 0.0048 x B/256 for biases and BN parameters
(official ``main.py``: ``--learning-rate-weights 0.2 --learning-rate-biases 0.0048``, both on the
same warm-up + cosine schedule; "biases" = every 1-d parameter), wd 1.5e-6 (the paper; the
official ``main.py`` default is 1e-6, an option: ``SOLVER.WEIGHT_DECAY 1e-6``), 1000 epochs,
10 warm-up epochs, BYOL's augmentations, SyncBN; 73.2 linear top-1. No target network, no
predictor, no negatives.

The bias/BN lr is ``BARLOWTWINS.BIAS_NORM_LR_MULT`` (0.0048 / 0.2 = 0.024) times the weights' lr:
an lr rule (``lr_rules``) that ``ssl_zoo.solver.build.get_param_groups`` applies to every bias /
norm parameter of the backbone and projector.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
from torch import nn

from ssl_zoo.config import CfgNode
from ssl_zoo.modeling.backbones.build import build_backbone_from_cfg
from ssl_zoo.modeling.heads import MLP
from ssl_zoo.modeling.losses.barlow_twins import BarlowTwinsLoss
from ssl_zoo.modeling.method import METHOD_REGISTRY, SSLMethod
from ssl_zoo.solver.build import LRRule


@METHOD_REGISTRY.register()
class BarlowTwins(SSLMethod):
    """Barlow Twins: cross-correlation of the two views' projections pushed to the identity.

    Args:
        backbone: encoder f, ``[B,3,H,W] -> [B, backbone.out_dim]``.
        projector: ``[B, out_dim] -> [B, D]``.
        lambd: off-diagonal weight lambda.
        gather_distributed: cross-correlation over the global batch.
    """

    def __init__(self, backbone: nn.Module, projector: nn.Module, *, lambd: float = 0.0051,
                 gather_distributed: bool = True) -> None:
        super().__init__()
        self.backbone, self.projector = backbone, projector
        self.loss_fn = BarlowTwinsLoss(lambd, gather_distributed=gather_distributed)

    @classmethod
    def add_config(cls, cfg) -> None:
        cfg.BARLOWTWINS = CfgNode()
        cfg.BARLOWTWINS.PROJECTOR_DIM = 8192  # hidden and output size (paper: 8192-8192-8192)
        cfg.BARLOWTWINS.PROJECTOR_NUM_LAYERS = 3
        cfg.BARLOWTWINS.LAMBDA = 0.0051  # official code (paper text: 5e-3)
        cfg.BARLOWTWINS.GATHER_DISTRIBUTED = True  # c over the global batch
        cfg.BARLOWTWINS.BIAS_NORM_LR_MULT = 0.024  # official code: lr 0.0048 (biases, BN) / 0.2 (weights)

    @classmethod
    def from_config(cls, cfg) -> dict:
        c, bn = cfg.BARLOWTWINS, cfg.MODEL.BN
        backbone = build_backbone_from_cfg(cfg)
        projector = MLP(backbone.out_dim, c.PROJECTOR_DIM, c.PROJECTOR_DIM, num_layers=c.PROJECTOR_NUM_LAYERS,
                        bn_momentum=bn.MOMENTUM, bn_eps=bn.EPS)
        return dict(backbone=backbone, projector=projector, lambd=c.LAMBDA, gather_distributed=c.GATHER_DISTRIBUTED)

    @classmethod
    def lr_rules(cls, cfg) -> list:
        """Biases and BN parameters at 0.024 x the weights' lr (official code: 0.0048 / 0.2)."""
        return [LRRule("", lr_mult=cfg.BARLOWTWINS.BIAS_NORM_LR_MULT, bias_norm_only=True)]

    def forward(self, views: List[torch.Tensor], labels: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        z1, z2 = (self.projector(self.backbone(v)) for v in views[:2])  # official code: one pass per view
        loss = self.loss_fn(z1, z2)
        return {"loss": loss, "barlow_loss": loss.detach(), "embedding": z1.detach()}
