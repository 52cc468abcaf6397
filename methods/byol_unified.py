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

from typing import Optional

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
        **byol_kwargs: the other :class:`BYOL` arguments: ``loss`` (:class:`UnifiedLoss`: alpha is the
            temperature of the negatives, Table 5b: 0.1; beta their weight, 0 = BYOL),
            ``momentum_schedule``, ``use_target`` (Table 5b "Target network"), ...
    """

    def __init__(self, backbone: nn.Module, projector: nn.Module, predictor: Optional[nn.Module], **byol_kwargs) -> None:
        super().__init__(backbone, projector, predictor if predictor is not None else nn.Identity(), **byol_kwargs)
        self.loss_name = "unified_loss"

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
        return dict(kwargs, loss=UnifiedLoss(c.ALPHA, c.BETA), use_target=c.TARGET_NETWORK)
