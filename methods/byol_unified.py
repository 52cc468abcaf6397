"""BYOL's ablations that need code (Grill et al. 2020, Sec. 5, Table 5b; PROTOCOLS.md s.7).

``BYOLUnified`` is BYOL (``methods/byol.py``, unchanged, with all its ``cfg.BYOL`` keys) with
three switches of Table 5b, and the unified objective of App. F (``UnifiedLoss``)::

    phi = predictor(z_theta)  or  z_theta          (BYOLUNIFIED.PREDICTOR)
    psi = z_xi (EMA target)   or  z_theta          (BYOLUNIFIED.TARGET_NETWORK; no target:
                                                    the online projections, with gradient)
    L = sum over directions of 2 - InfoNCE^{alpha, beta}(phi, psi)

beta = 0 with predictor and target is exactly BYOL's loss (tests/test_contrastive.py);
beta = 1, alpha = 0.1, no predictor, no target is SimCLR inside BYOL's setup (69.4 in Table 5b).
Target-network ablations that only change tau (constant random target tau = 1, stop-gradient of
online tau = 0, tau_base 0.9 / 0.99 / 0.999) are plain BYOL configs (configs/byol/ablations/).
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
from torch import nn

from ssl_zoo.config import CfgNode
from ssl_zoo.modeling.losses.unified import UnifiedLoss
from ssl_zoo.modeling.method import METHOD_REGISTRY

from .byol import BYOL


@METHOD_REGISTRY.register()
class BYOLUnified(BYOL):
    """BYOL with optional predictor / target network and the alpha-beta unified objective.

    Args:
        backbone, projector, predictor: as :class:`BYOL`; ``predictor=None`` = no predictor.
        alpha: temperature of the negatives (Table 5b: 0.1).
        beta: weight of the negatives (0 = BYOL).
        use_target: EMA target network (True) or the online network itself as psi.
        **byol_kwargs: the other :class:`BYOL` arguments (tau_base, concat_views, ...).
    """

    def __init__(self, backbone: nn.Module, projector: nn.Module, predictor: Optional[nn.Module], *,
                 alpha: float = 0.1, beta: float = 0.0, use_target: bool = True, **byol_kwargs) -> None:
        super().__init__(backbone, projector, predictor if predictor is not None else nn.Identity(), **byol_kwargs)
        self.loss_fn = UnifiedLoss(alpha, beta)
        self.use_target = use_target
        if not use_target:  # no target network: nothing to average, nothing to checkpoint
            del self.target_backbone, self.target_projector

    @classmethod
    def add_config(cls, cfg) -> None:
        if "BYOL" not in cfg:  # BYOL's own keys (cfg.BYOL), when only this method is configured
            BYOL.add_config(cfg)
        cfg.BYOLUNIFIED = CfgNode()
        cfg.BYOLUNIFIED.PREDICTOR = True  # Table 5b "Predictor"
        cfg.BYOLUNIFIED.TARGET_NETWORK = True  # Table 5b "Target network"
        cfg.BYOLUNIFIED.ALPHA = 0.1  # Table 5b: alpha = 0.1
        cfg.BYOLUNIFIED.BETA = 0.0  # 0 = BYOL; 1 adds SimCLR's negatives

    @classmethod
    def from_config(cls, cfg) -> dict:
        kwargs = super().from_config(cfg)
        c = cfg.BYOLUNIFIED
        if not c.PREDICTOR:
            kwargs["predictor"] = None
        if not c.TARGET_NETWORK:
            kwargs["target_backbone"] = kwargs["target_projector"] = None
        return dict(kwargs, alpha=c.ALPHA, beta=c.BETA, use_target=c.TARGET_NETWORK)

    def target_parameters(self):
        return super().target_parameters() if getattr(self, "use_target", True) else []

    def forward(self, views: List[torch.Tensor], labels: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        views = views[:2]
        ys, zs = self._encode(self.backbone, self.projector, views)
        phis = self._predict(zs)
        if self.use_target:
            with torch.no_grad():
                _, psis = self._encode(self.target_backbone, self.target_projector, views)
        else:
            psis = zs  # SimCLR: psi = z_theta, gradients flow through both sides
        loss = self.loss_fn(phis[0], phis[1], psis[0], psis[1])
        out = {"loss": loss, "unified_loss": loss.detach(), "embedding": zs[0].detach()}
        return self._add_online_classifier(out, ys[0], labels)

    def hooks(self) -> list:
        return super().hooks() if self.use_target else []
