"""BYOL: Bootstrap Your Own Latent (Grill et al., NeurIPS 2020, arXiv 2006.07733).

Sec. 3.1 of the paper, in this module's names::

    online:  y = backbone(v)      z = projector(y)        p = predictor(z)
    target:  y' = target_backbone(v')   z' = target_projector(y')      (no gradient)
    L = || p/|p| - z'/|z'| ||^2 = 2 - 2 cos(p, z')                      (Eq. 2)
    L_total = L(v -> v') + L(v' -> v)            two terms SUMMED      (Eq. 3)
    after each step: xi <- tau xi + (1 - tau) theta, tau cosine from tau_base to 1

Faithfulness notes (PROTOCOLS.md s.2):
- Views go through the networks one at a time (as the official code): BN statistics are
  per view. ``BYOL.CONCAT_VIEWS True`` concatenates them (faster, different BN statistics).
- The target keeps its own BN running statistics; only parameters are averaged.
- ``BYOL.TARGET_INIT``: "copy" (paper pseudo-code, default) or "independent" (official
  code: online and target start from different random initialisations).
- Optional online linear classifier on the stop-gradient representation of view 1, for a
  live accuracy signal only (official code); it never sends gradients into the encoder.
"""
from __future__ import annotations

import copy
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ssl_zoo.config import CfgNode
from ssl_zoo.modeling.backbones.build import build_backbone_from_cfg
from ssl_zoo.modeling.heads import MLP
from ssl_zoo.modeling.losses.byol import BYOLLoss
from ssl_zoo.modeling.method import METHOD_REGISTRY, SSLMethod
from ssl_zoo.modeling.momentum import ema_update_
from ssl_zoo.solver.build import LRRule
from ssl_zoo.solver.schedules import build_momentum_schedule


@METHOD_REGISTRY.register()
class BYOL(SSLMethod):
    """BYOL with an EMA target network.

    Args:
        backbone: online encoder, ``[B,3,H,W] -> [B, backbone.out_dim]``.
        projector: ``[B, out_dim] -> [B, proj_dim]`` (paper: 2048-4096-256, BN, ReLU).
        predictor: ``[B, proj_dim] -> [B, proj_dim]`` (paper: 256-4096-256).
        loss: ``loss(p1, p2, z1', z2') -> scalar`` (:class:`BYOLLoss`: both directions summed).
        momentum_schedule: ``(step, max_steps) -> tau`` of the EMA (paper: cosine from 0.996 to 1).
        concat_views: forward both views in one batch (changes BN statistics).
        num_classes: >0 adds the online linear classifier on detached features.
        target_backbone, target_projector: separately initialised target networks
            (official code); default: copies of the online ones (paper pseudo-code).
        use_target: False = no target network at all (Table 5b's ablation: the online
            projections are the targets; ``momentum_schedule`` is then unused).
    """

    def __init__(
        self,
        backbone: nn.Module,
        projector: nn.Module,
        predictor: nn.Module,
        loss: nn.Module,
        momentum_schedule: Callable[[int, int], float],
        *,
        concat_views: bool = False,
        num_classes: int = 0,
        target_backbone: Optional[nn.Module] = None,
        target_projector: Optional[nn.Module] = None,
        use_target: bool = True,
    ) -> None:
        super().__init__()
        self.backbone, self.projector, self.predictor = backbone, projector, predictor
        self.loss_name = "byol_loss"  # the logged name of the loss term
        self.use_target = use_target
        if use_target:  # target = copy of the online networks unless separately initialised ones are given
            self.target_backbone = target_backbone if target_backbone is not None else copy.deepcopy(backbone)
            self.target_projector = target_projector if target_projector is not None else copy.deepcopy(projector)
            for p in self.target_parameters():
                p.requires_grad_(False)
        self.loss_fn = loss
        self.momentum_schedule = momentum_schedule
        self.concat_views = concat_views
        self.classifier = nn.Linear(backbone.out_dim, num_classes) if num_classes > 0 else None

    @classmethod
    def add_config(cls, cfg) -> None:
        cfg.BYOL = CfgNode()
        cfg.BYOL.PROJECTOR_HIDDEN_DIM = 4096  # PROTOCOLS s.2: Linear(2048, 4096) -> BN -> ReLU -> Linear(4096, 256)
        cfg.BYOL.PROJECTOR_OUT_DIM = 256
        cfg.BYOL.PREDICTOR_HIDDEN_DIM = 4096  # predictor q: 256 -> 4096 -> 256
        cfg.BYOL.PREDICTOR_LR_MULT = 1.0  # Table 21 ablation (10x helps at tau = 0)
        cfg.BYOL.TAU_BASE = 0.996  # PROTOCOLS s.2
        cfg.BYOL.TAU_SCHEDULE = "cosine"  # tau = 1 - (1 - tau_base)(cos(pi k/K) + 1)/2
        cfg.BYOL.CONCAT_VIEWS = False  # official code: separate forward per view
        # [C] byol/utils/networks.py MLP: hk.Linear(output_size, with_bias=False) (projector and predictor).
        cfg.BYOL.HEAD_OUTPUT_BIAS = False
        cfg.BYOL.TARGET_INIT = "copy"  # "independent" = official code's separate init
        cfg.BYOL.ONLINE_CLASSIFIER_CLASSES = 0  # 1000 for ImageNet monitoring (official code)

    @classmethod
    def from_config(cls, cfg) -> dict:
        c, bn = cfg.BYOL, cfg.MODEL.BN
        if c.TARGET_INIT not in ("copy", "independent"):
            raise ValueError(f"BYOL.TARGET_INIT must be 'copy' or 'independent', got '{c.TARGET_INIT}'")
        mlp = dict(bn_momentum=bn.MOMENTUM, bn_eps=bn.EPS, out_bias=c.HEAD_OUTPUT_BIAS)

        def encoder():
            backbone = build_backbone_from_cfg(cfg)
            return backbone, MLP(backbone.out_dim, c.PROJECTOR_HIDDEN_DIM, c.PROJECTOR_OUT_DIM, **mlp)

        backbone, projector = encoder()
        target_backbone, target_projector = encoder() if c.TARGET_INIT == "independent" else (None, None)
        predictor = MLP(c.PROJECTOR_OUT_DIM, c.PREDICTOR_HIDDEN_DIM, c.PROJECTOR_OUT_DIM, **mlp)
        return dict(
            backbone=backbone,
            projector=projector,
            predictor=predictor,
            loss=BYOLLoss(),
            momentum_schedule=build_momentum_schedule(c.TAU_SCHEDULE, c.TAU_BASE),
            concat_views=c.CONCAT_VIEWS,
            num_classes=c.ONLINE_CLASSIFIER_CLASSES,
            target_backbone=target_backbone,
            target_projector=target_projector,
        )

    @classmethod
    def lr_rules(cls, cfg) -> list:
        """The predictor's lr multiplier (Table 21: 10x rescues tau = 0)."""
        return [LRRule("predictor.", lr_mult=cfg.BYOL.PREDICTOR_LR_MULT)]

    def target_parameters(self) -> list:
        if not self.use_target:
            return []
        return list(self.target_backbone.parameters()) + list(self.target_projector.parameters())

    @torch.no_grad()
    def on_backbone_loaded(self) -> None:
        """Warm start: the target backbone starts from the loaded online weights (parameters and
        BN statistics), as a target built by copying would; the heads are not loaded and keep
        their initialisation."""
        if self.use_target:
            self.target_backbone.load_state_dict(self.backbone.state_dict())

    @torch.no_grad()
    def after_step(self, step: int, max_steps: int) -> Dict[str, float]:
        """xi <- tau xi + (1 - tau) theta after every optimizer step (Sec. 3.1); buffers untouched."""
        if not self.use_target:
            return {}
        tau = float(self.momentum_schedule(step, max_steps))
        ema_update_(self.target_backbone, self.backbone, tau)
        ema_update_(self.target_projector, self.projector, tau)
        return {"tau": tau}

    def _encode(self, backbone: nn.Module, head: nn.Module, views: List[torch.Tensor]):
        """Representations y and projections z per view (each ``[B, D]``)."""
        if self.concat_views:
            y = backbone(torch.cat(views))
            ys = list(y.chunk(len(views)))
            return ys, list(head(y).chunk(len(views)))
        ys = [backbone(v) for v in views]
        return ys, [head(y) for y in ys]

    def _predict(self, zs: List[torch.Tensor]) -> List[torch.Tensor]:
        """Predictor outputs per view (one batch when views are concatenated)."""
        if self.concat_views:
            return list(self.predictor(torch.cat(zs)).chunk(len(zs)))
        return [self.predictor(z) for z in zs]

    def _add_online_classifier(self, out: dict, y: torch.Tensor, labels: Optional[torch.Tensor]) -> dict:
        """Adds the monitoring classifier's loss on ``sg(y)`` of view 1 (official code) to ``out``."""
        if self.classifier is not None and labels is not None:
            logits = self.classifier(y.detach())
            cls_loss = F.cross_entropy(logits, labels)
            out["loss"] = out["loss"] + cls_loss
            out["online_cls_loss"] = cls_loss.detach()
            out["online_top1"] = (logits.argmax(1) == labels).float().mean().detach()
        return out

    def _targets(self, views: List[torch.Tensor], zs: List[torch.Tensor]) -> List[torch.Tensor]:
        """The target projections z' per view; without a target network, the online ``zs`` themselves."""
        if not self.use_target:
            return zs
        with torch.no_grad():
            return self._encode(self.target_backbone, self.target_projector, views)[1]

    def forward(self, views: List[torch.Tensor], labels: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        views = views[:2]
        ys, zs = self._encode(self.backbone, self.projector, views)
        ps = self._predict(zs)
        targets = self._targets(views, zs)
        # p1 predicts the target of view 2 and vice versa; the two terms are summed.
        loss = self.loss_fn(ps[0], ps[1], targets[0], targets[1])
        out = {"loss": loss, self.loss_name: loss.detach(), "embedding": zs[0].detach()}
        return self._add_online_classifier(out, ys[0], labels)
