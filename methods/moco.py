"""MoCo: Momentum Contrast (He et al., CVPR 2020, arXiv 1911.05722), v2 by default
(Chen et al. 2020, "Improved Baselines with Momentum Contrastive Learning", arXiv 2003.04297).

Algorithm 1 of the paper, in this module's names::

    q = projector(backbone(x_q))                         query, online encoder
    k = target_projector(target_backbone(x_k))           key, no gradient, shuffled BN
    L = InfoNCE(q, k+, queue; T)                          (Eq. 1, queue of K negatives)
    after each step: xi <- m xi + (1 - m) theta          (Eq. 2, m = 0.999, constant)
    enqueue the keys of the global batch, dequeue the oldest

The key encoder uses the same EMA update as BYOL's target network
(``ssl_zoo.modeling.momentum.ema_update_`` in ``after_step``, schedule "constant").
PROTOCOLS.md s.8: v2 = MLP head 2048 -> 2048 -> 128 (no BN), T 0.2, K 65,536, m 0.999;
v1 = linear head to 128, T 0.07 (``configs/moco/``).

Shuffling BN (Sec. 3.3): with several processes the key encoder sees a random permutation
of the global batch (``ssl_zoo.utils.dist_ops.batch_shuffle``) so BN statistics cannot leak
the positive. In one process ``MOCO.SPLIT_BN G`` simulates it (official CIFAR-10 demo):
both encoders compute BN statistics per group of G interleaved samples
(``ssl_zoo.modeling.batchnorm.SplitBatchNorm``) and the key batch is shuffled first.
``MOCO.SPLIT_BN -1`` (the default, "auto") turns this emulation on with 8 groups when the run has
one process (the official runs used 8 GPUs, the CIFAR-10 demo 8 splits) and logs it; with several
processes it is off and the real shuffling BN runs. The official ``main_moco.py`` refuses to run
without DDP instead; emulating keeps single-GPU runs usable while avoiding the intra-batch BN
leak (Sec. 3.3) that a plain single-process run would silently have.
``MODEL.SYNC_BN`` is the multi-process alternative.
"""
from __future__ import annotations

import copy
import logging
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ssl_zoo.config import CfgNode
from ssl_zoo.modeling.backbones.build import build_backbone_from_cfg
from ssl_zoo.modeling.batchnorm import convert_split_batchnorm
from ssl_zoo.modeling.heads import MLP
from ssl_zoo.modeling.losses.infonce import InfoNCELoss
from ssl_zoo.modeling.method import METHOD_REGISTRY, SSLMethod
from ssl_zoo.modeling.momentum import ema_update_
from ssl_zoo.modeling.queue import KeyQueue
from ssl_zoo.solver.schedules import build_momentum_schedule
from ssl_zoo.utils.comm import get_world_size
from ssl_zoo.utils.dist_ops import batch_shuffle, batch_unshuffle

logger = logging.getLogger(__name__)

# Simulated devices of the single-process shuffling BN ("auto"): the official ImageNet runs used
# 8 GPUs (32 images each at batch 256) and the official CIFAR-10 demo uses bn_splits=8.
AUTO_SPLIT_BN = 8


def resolve_split_bn(split_bn: int, shuffle_bn: bool, world_size: int, per_process_batch: int) -> int:
    """The number of BN groups to simulate: ``split_bn`` as given, or "auto" (-1) resolved.

    Args:
        split_bn: ``MOCO.SPLIT_BN``: -1 auto, 0 off, G > 1 groups.
        shuffle_bn: ``MOCO.SHUFFLE_BN``.
        world_size: processes of the run.
        per_process_batch: images per process and step.

    Raises:
        ValueError: a split that does not divide the per-process batch.
    """
    split_bn = int(split_bn)
    if split_bn == -1:
        split_bn = AUTO_SPLIT_BN if (shuffle_bn and world_size == 1) else 0
        if split_bn:
            logger.warning(f"MoCo in one process: shuffling BN emulated with {split_bn} BN groups "
                           f"(MOCO.SPLIT_BN auto -> {split_bn}; the official code requires DDP). "
                           "Set MOCO.SPLIT_BN 0 to turn it off.")
    elif split_bn == 0 and shuffle_bn and world_size == 1:
        logger.warning("MoCo in one process with MOCO.SPLIT_BN 0: no shuffling BN, the key encoder's BN "
                       "statistics can leak the positive (MoCo Sec. 3.3).")
    if split_bn < -1 or split_bn == 1:
        raise ValueError(f"MOCO.SPLIT_BN must be -1 (auto), 0 (off) or a group count > 1, got {split_bn}")
    if split_bn > 1 and per_process_batch % split_bn:
        raise ValueError(f"MOCO.SPLIT_BN {split_bn} must divide the per-process batch {per_process_batch} "
                         "(SOLVER.IMS_PER_BATCH / processes); change SOLVER.IMS_PER_BATCH or MOCO.SPLIT_BN.")
    return split_bn


@METHOD_REGISTRY.register()
class MoCo(SSLMethod):
    """MoCo v1/v2 with a momentum key encoder and a queue of negatives.

    Args:
        backbone: query encoder, ``[B,3,H,W] -> [B, backbone.out_dim]``.
        projector: query head ``[B, out_dim] -> [B, dim]`` (v2 MLP, v1 Linear).
        loss: ``loss(q, k, queue) -> scalar`` (:class:`InfoNCELoss` with temperature T).
        momentum_schedule: ``(step, max_steps) -> m`` of the key encoder (constant 0.999).
        queue_size: K keys in the queue.
        shuffle_bn: shuffle the key encoder's batch across processes (and inside the process
            when ``split_bn > 1``).
        split_bn: > 1 = per-group BN statistics in both encoders (single-process shuffling BN).
        symmetric: also use (q2, k1) and enqueue both keys (common at CIFAR scale; the
            paper's MoCo is asymmetric).
    """

    def __init__(
        self,
        backbone: nn.Module,
        projector: nn.Module,
        loss: nn.Module,
        momentum_schedule: Callable[[int, int], float],
        *,
        queue_size: int = 65536,
        shuffle_bn: bool = True,
        symmetric: bool = False,
        split_bn: int = 0,
    ) -> None:
        super().__init__()
        if split_bn > 1:  # both encoders: G simulated devices with per-device BN statistics
            backbone = convert_split_batchnorm(backbone, split_bn)
            projector = convert_split_batchnorm(projector, split_bn)
        self.backbone, self.projector = backbone, projector
        # Key encoder = copy of the query encoder (Algorithm 1: f_k.params = f_q.params).
        self.target_backbone, self.target_projector = copy.deepcopy(backbone), copy.deepcopy(projector)
        for p in list(self.target_backbone.parameters()) + list(self.target_projector.parameters()):
            p.requires_grad_(False)
        dim = projector.out_features if isinstance(projector, nn.Linear) else projector.out_dim
        self.queue = KeyQueue(dim, queue_size)
        self.loss_fn = loss
        self.momentum_schedule = momentum_schedule
        self.shuffle_bn, self.symmetric, self.split_bn = shuffle_bn, symmetric, int(split_bn)

    @classmethod
    def add_config(cls, cfg) -> None:
        cfg.MOCO = CfgNode()
        cfg.MOCO.HEAD = "mlp"  # v2 "mlp": 2048 -> 2048 -> 128 without BN; v1 "linear": 2048 -> 128
        cfg.MOCO.PROJECTOR_HIDDEN_DIM = 2048
        cfg.MOCO.PROJECTOR_OUT_DIM = 128  # feature dimension (both versions)
        cfg.MOCO.QUEUE_SIZE = 65536  # K (PROTOCOLS s.8)
        cfg.MOCO.TEMPERATURE = 0.2  # v2 0.2, v1 0.07
        cfg.MOCO.TAU_BASE = 0.999  # key-encoder momentum m
        cfg.MOCO.TAU_SCHEDULE = "constant"  # MoCo keeps m fixed
        cfg.MOCO.SHUFFLE_BN = True  # Sec. 3.3 shuffling BN (multi-process)
        cfg.MOCO.SYMMETRIC = False  # paper: one direction (q of view 1, k of view 2)
        # > 1: BN statistics per group of SPLIT_BN interleaved samples in both encoders, and the
        # key batch shuffled inside the process: shuffling BN simulated on one device (official
        # CIFAR-10 demo: 8). 0 = off (per-process BN; shuffling needs several processes).
        # -1 = auto: 8 with one process (logged; official code refuses to run without DDP), else 0.
        cfg.MOCO.SPLIT_BN = -1

    @classmethod
    def from_config(cls, cfg) -> dict:
        c, bn = cfg.MOCO, cfg.MODEL.BN
        world = get_world_size()
        backbone = build_backbone_from_cfg(cfg)
        if c.HEAD == "mlp":
            projector = MLP(backbone.out_dim, c.PROJECTOR_HIDDEN_DIM, c.PROJECTOR_OUT_DIM, hidden_bn=False,
                            bn_momentum=bn.MOMENTUM, bn_eps=bn.EPS)
        elif c.HEAD == "linear":
            projector = nn.Linear(backbone.out_dim, c.PROJECTOR_OUT_DIM)
        else:
            raise ValueError(f"MOCO.HEAD must be 'mlp' (v2) or 'linear' (v1), got '{c.HEAD}'")
        return dict(backbone=backbone, projector=projector, loss=InfoNCELoss(c.TEMPERATURE),
                    momentum_schedule=build_momentum_schedule(c.TAU_SCHEDULE, c.TAU_BASE), queue_size=c.QUEUE_SIZE,
                    shuffle_bn=c.SHUFFLE_BN, symmetric=c.SYMMETRIC,
                    split_bn=resolve_split_bn(c.SPLIT_BN, c.SHUFFLE_BN, world,
                                              int(cfg.SOLVER.IMS_PER_BATCH) // max(world, 1)))

    @torch.no_grad()
    def _keys(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised keys ``[B, dim]`` of images ``x`` by the key encoder (shuffled BN)."""
        idx_unshuffle = local_unshuffle = None
        if self.shuffle_bn:
            x, idx_unshuffle = batch_shuffle(x)
            if self.split_bn > 1:  # in-process shuffle: keys land in other BN groups than their queries
                perm = torch.randperm(x.shape[0], device=x.device)
                x, local_unshuffle = x[perm], torch.argsort(perm)
        k = F.normalize(self.target_projector(self.target_backbone(x)), dim=1)
        if local_unshuffle is not None:
            k = k[local_unshuffle]
        return batch_unshuffle(k, idx_unshuffle)

    def forward(self, views: List[torch.Tensor], labels: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        v1, v2 = views[:2]
        q1 = self.projector(self.backbone(v1))
        k2 = self._keys(v2)
        loss = self.loss_fn(q1, k2, self.queue.keys)
        new_keys = [k2]
        if self.symmetric:
            q2 = self.projector(self.backbone(v2))
            k1 = self._keys(v1)
            loss = loss + self.loss_fn(q2, k1, self.queue.keys)
            new_keys.append(k1)
        if self.training:
            self.queue.enqueue(torch.cat(new_keys))
        return {"loss": loss, "infonce_loss": loss.detach(), "embedding": q1.detach()}

    @torch.no_grad()
    def on_backbone_loaded(self) -> None:
        """Warm start: the key encoder's backbone starts from the loaded query weights (the
        official code copies query -> key at construction; here the load comes after it)."""
        self.target_backbone.load_state_dict(self.backbone.state_dict())

    @torch.no_grad()
    def after_step(self, step: int, max_steps: int) -> Dict[str, float]:
        """theta_k <- m theta_k + (1 - m) theta_q after every optimizer step (Eq. 2); buffers untouched."""
        tau = float(self.momentum_schedule(step, max_steps))
        ema_update_(self.target_backbone, self.backbone, tau)
        ema_update_(self.target_projector, self.projector, tau)
        return {"tau": tau}
