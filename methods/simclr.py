"""SimCLR: a Simple Framework for Contrastive Learning (Chen et al., ICML 2020, arXiv 2002.05709),
and SimCLR v2 as a config (Chen et al., NeurIPS 2020, arXiv 2006.10029).

Sec. 2.1 of the paper, in this module's names::

    h = backbone(x)      z = projector(h)            for both views of every image
    L = NT-Xent(z1, z2; T) over the 2N views of the GLOBAL batch (Eq. 1)

PROTOCOLS.md s.8: projector 2048 -> 2048 -> 128 with BN (the official code also puts a BN,
without bias, on the output), T = 0.1 at batch 4096, LARS lr 0.3 x B/256, wd 1e-6.
SimCLR v2: a 3-layer projector, and fine-tuning starts from its first layer
(``finetune_encoder()`` returns backbone + the first ``SIMCLR.FINETUNE_FROM_LAYER`` layers).

The official code feeds both views as one batch (BN statistics over 2N images):
``SIMCLR.CONCAT_VIEWS True``. Negatives of all processes are used (``ssl_zoo.utils.dist_ops``).
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
from torch import nn

from ssl_zoo.config import CfgNode
from ssl_zoo.modeling.backbones.build import build_backbone_from_cfg
from ssl_zoo.modeling.heads import MLP
from ssl_zoo.modeling.losses.ntxent import NTXentLoss
from ssl_zoo.modeling.method import METHOD_REGISTRY, SSLMethod


@METHOD_REGISTRY.register()
class SimCLR(SSLMethod):
    """SimCLR: backbone + projector trained with NT-Xent, no target network.

    Args:
        backbone: encoder f, ``[B,3,H,W] -> [B, backbone.out_dim]``.
        projector: g, ``[B, out_dim] -> [B, proj_dim]`` (an :class:`MLP`).
        temperature: NT-Xent temperature T.
        concat_views: forward both views as one batch (official code).
        gather_distributed: negatives from every process (the paper's global batch).
        finetune_from_layer: projector layers kept for fine-tuning (v1 0, v2 1).
        sum_directions: the official loss scale ``mean(loss_a + loss_b)`` (True) or the
            paper's Eq. 1 mean over 2N anchors (False, half of it); see ``NTXentLoss``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        projector: nn.Module,
        *,
        temperature: float = 0.1,
        concat_views: bool = True,
        gather_distributed: bool = True,
        finetune_from_layer: int = 0,
        sum_directions: bool = True,
    ) -> None:
        super().__init__()
        self.backbone, self.projector = backbone, projector
        self.loss_fn = NTXentLoss(temperature, gather_distributed=gather_distributed, sum_directions=sum_directions)
        self.concat_views = concat_views
        self.finetune_from_layer = finetune_from_layer

    @classmethod
    def add_config(cls, cfg) -> None:
        cfg.SIMCLR = CfgNode()
        cfg.SIMCLR.PROJECTOR_HIDDEN_DIM = 2048  # PROTOCOLS s.8: 2048 -> 2048 -> 128 with BN
        cfg.SIMCLR.PROJECTOR_OUT_DIM = 128
        cfg.SIMCLR.PROJECTOR_NUM_LAYERS = 2  # v1: 2 Linear layers; v2: 3
        cfg.SIMCLR.PROJECTOR_LAST_BN = True  # official code: BN (no bias) on the output too
        cfg.SIMCLR.PROJECTOR_LAST_BN_CENTER = False  # [C] tf2/model.py: output BatchNorm(center=False): no beta
        cfg.SIMCLR.TEMPERATURE = 0.1  # 0.1 at batch 4096, 0.5 at small batch (s.8)
        cfg.SIMCLR.CONCAT_VIEWS = True  # official code: both views in one batch
        cfg.SIMCLR.GATHER_DISTRIBUTED = True  # negatives from all processes
        cfg.SIMCLR.FINETUNE_FROM_LAYER = 0  # v2 fine-tunes from the projector's first layer (1)
        # [C] tf2/objective.py: loss = mean(loss_a + loss_b), 2x the paper's Eq. 1 mean over 2N anchors
        # (False = the paper's scale; under LARS it halves the lr of the excluded BN/bias params).
        cfg.SIMCLR.SUM_DIRECTIONS = True

    @classmethod
    def from_config(cls, cfg) -> dict:
        c, bn = cfg.SIMCLR, cfg.MODEL.BN
        backbone = build_backbone_from_cfg(cfg)
        projector = MLP(backbone.out_dim, c.PROJECTOR_HIDDEN_DIM, c.PROJECTOR_OUT_DIM, num_layers=c.PROJECTOR_NUM_LAYERS,
                        last_bn=c.PROJECTOR_LAST_BN, last_bn_center=c.PROJECTOR_LAST_BN_CENTER,
                        bn_momentum=bn.MOMENTUM, bn_eps=bn.EPS)
        if not 0 <= c.FINETUNE_FROM_LAYER < c.PROJECTOR_NUM_LAYERS:
            raise ValueError(f"SIMCLR.FINETUNE_FROM_LAYER must be in [0, {c.PROJECTOR_NUM_LAYERS - 1}], "
                             f"got {c.FINETUNE_FROM_LAYER}")
        return dict(backbone=backbone, projector=projector, temperature=c.TEMPERATURE, concat_views=c.CONCAT_VIEWS,
                    gather_distributed=c.GATHER_DISTRIBUTED, finetune_from_layer=c.FINETUNE_FROM_LAYER,
                    sum_directions=c.SUM_DIRECTIONS)

    def forward(self, views: List[torch.Tensor], labels: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        views = views[:2]
        if self.concat_views:
            z1, z2 = self.projector(self.backbone(torch.cat(views))).chunk(2)
        else:
            z1, z2 = (self.projector(self.backbone(v)) for v in views)
        loss = self.loss_fn(z1, z2)
        return {"loss": loss, "ntxent_loss": loss.detach(), "embedding": z1.detach()}

    def finetune_encoder(self) -> nn.Module:
        """Backbone + the first ``finetune_from_layer`` projector layers (SimCLR v2 Sec. 2.2).

        Each hidden projector layer is ``Linear -> BN -> ReLU`` (3 modules of the MLP).
        """
        if self.finetune_from_layer == 0:
            return self.backbone
        return nn.Sequential(self.backbone, *list(self.projector)[: 3 * self.finetune_from_layer])
