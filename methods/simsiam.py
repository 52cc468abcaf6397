"""SimSiam: Exploring Simple Siamese Representation Learning (Chen & He, CVPR 2021, arXiv 2011.10566).

Algorithm 1 of the paper, in this module's names::

    z1, z2 = projector(backbone(x1)), projector(backbone(x2))
    p1, p2 = predictor(z1), predictor(z2)
    L = D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2,     D(p, z) = -cos(p, z)

BYOL without the target network: the stop-gradient alone prevents collapse (Sec. 4.1).
Sec. 3 / App.: projector 3 layers 2048-d with BN on every layer including the output (the
official code: output BN without affine); predictor 2048 -> 512 -> 2048 with BN on the
hidden layer only; SGD lr 0.05 x B/256, momentum 0.9, wd 1e-4, cosine, batch 512, 100 ep
(68.1 linear). The predictor's lr is not decayed (Sec. 4.2 / Table 1c: 68.1 vs 67.7 with
decay; official ``main_simsiam.py --fix-pred-lr`` sets it to ``init_lr = 0.05 x B/256`` every
epoch, with no warm-up): ``SIMSIAM.FIX_PREDICTOR_LR`` is an lr rule on the predictor (``lr_rules``), so the
solver keeps its lr at the scaled peak lr x ``SIMSIAM.PREDICTOR_LR_MULT`` for the whole run.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
from torch import nn

from ssl_zoo.config import CfgNode
from ssl_zoo.modeling.backbones.build import build_backbone_from_cfg
from ssl_zoo.modeling.heads import MLP
from ssl_zoo.modeling.losses.negative_cosine import NegativeCosineLoss
from ssl_zoo.modeling.method import METHOD_REGISTRY, SSLMethod
from ssl_zoo.solver.build import LRRule


@METHOD_REGISTRY.register()
class SimSiam(SSLMethod):
    """SimSiam: one encoder, a predictor and a stop-gradient.

    Args:
        backbone: encoder f, ``[B,3,H,W] -> [B, backbone.out_dim]``.
        projector: ``[B, out_dim] -> [B, dim]`` (3-layer MLP with output BN).
        predictor: h, ``[B, dim] -> [B, dim]`` (bottleneck MLP).
    """

    def __init__(self, backbone: nn.Module, projector: nn.Module, predictor: nn.Module) -> None:
        super().__init__()
        self.backbone, self.projector, self.predictor = backbone, projector, predictor
        self.loss_fn = NegativeCosineLoss()

    @classmethod
    def add_config(cls, cfg) -> None:
        cfg.SIMSIAM = CfgNode()
        cfg.SIMSIAM.PROJECTOR_DIM = 2048  # hidden and output size of the projector (paper)
        cfg.SIMSIAM.PROJECTOR_NUM_LAYERS = 3  # 3 layers for ImageNet, 2 for CIFAR (paper Sec. 5 / App.)
        cfg.SIMSIAM.PREDICTOR_HIDDEN_DIM = 512  # bottleneck 2048 -> 512 -> 2048
        cfg.SIMSIAM.PREDICTOR_LR_MULT = 1.0  # predictor lr = this x the (scaled) lr
        cfg.SIMSIAM.FIX_PREDICTOR_LR = True  # paper (Table 1c) / official --fix-pred-lr: predictor lr not decayed

    @classmethod
    def from_config(cls, cfg) -> dict:
        c, bn = cfg.SIMSIAM, cfg.MODEL.BN
        mlp = dict(bn_momentum=bn.MOMENTUM, bn_eps=bn.EPS)
        backbone = build_backbone_from_cfg(cfg)
        projector = MLP(backbone.out_dim, c.PROJECTOR_DIM, c.PROJECTOR_DIM, num_layers=c.PROJECTOR_NUM_LAYERS,
                        last_bn=True, **mlp)
        # Official code: the output BN has no affine parameters.
        projector[-1] = nn.BatchNorm1d(c.PROJECTOR_DIM, eps=bn.EPS, momentum=bn.MOMENTUM, affine=False)
        predictor = MLP(c.PROJECTOR_DIM, c.PREDICTOR_HIDDEN_DIM, c.PROJECTOR_DIM, **mlp)
        return dict(backbone=backbone, projector=projector, predictor=predictor)

    @classmethod
    def lr_rules(cls, cfg) -> list:
        """The predictor's lr: a multiplier, and fixed at the peak (not decayed) by default."""
        c = cfg.SIMSIAM
        return [LRRule("predictor.", lr_mult=c.PREDICTOR_LR_MULT, fixed_lr=c.FIX_PREDICTOR_LR)]

    def forward(self, views: List[torch.Tensor], labels: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        # Official code: one forward per view (per-view BN statistics).
        z1, z2 = (self.projector(self.backbone(v)) for v in views[:2])
        p1, p2 = self.predictor(z1), self.predictor(z2)
        loss = self.loss_fn(p1, p2, z1, z2)
        return {"loss": loss, "negcos_loss": loss.detach(), "embedding": z1.detach()}
