"""Exponential moving average of the online network into the target network.

BYOL (Grill et al. 2020, Eq. 1; PROTOCOLS.md s.2): after every online step,
``xi <- tau * xi + (1 - tau) * theta`` with
``tau = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2`` (k = step, K = total steps).
Only parameters are averaged: the target keeps its own BN running statistics,
updated by its own forward passes in train mode (official code, PROTOCOLS.md s.2 [C]).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ssl_zoo.utils.registry import Registry

MOMENTUM_SCHEDULE_REGISTRY = Registry("MOMENTUM_SCHEDULE")
MOMENTUM_SCHEDULE_REGISTRY.__doc__ = "Pure functions (step, max_steps, base) -> tau."


@torch.no_grad()
def ema_update_(target: nn.Module, online: nn.Module, tau: float) -> None:
    """In place ``target_param = tau * target_param + (1 - tau) * online_param``.

    Buffers (BN running statistics) are not touched. Uses one fused multi-tensor
    ``torch._foreach_lerp_`` call: ``xi + (1 - tau)(theta - xi)``.

    Args:
        target: network updated in place (xi); same architecture as ``online``.
        online: network averaged in (theta); read only.
        tau: target decay in ``[0, 1]`` (1 = target frozen, 0 = copy of online).
    """
    tgt = list(target.parameters())
    src = list(online.parameters())
    if len(tgt) != len(src):
        raise ValueError(f"ema_update_: target has {len(tgt)} parameter tensors, online has {len(src)}.")
    if not tgt:
        return
    torch._foreach_lerp_(tgt, src, 1.0 - float(tau))


@MOMENTUM_SCHEDULE_REGISTRY.register(name="cosine")
def cosine_momentum(step: int, max_steps: int, base: float) -> float:
    """BYOL's ``tau = 1 - (1 - base) (cos(pi k / K) + 1) / 2``: ``base`` at k=0, 1 at k=K.

    ``step`` is clamped to ``[0, max_steps]``; ``max_steps <= 0`` gives ``base``.
    """
    if max_steps <= 0:
        return float(base)
    k = min(max(step, 0), max_steps)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * k / max_steps) + 1.0) / 2.0


@MOMENTUM_SCHEDULE_REGISTRY.register(name="constant")
def constant_momentum(step: int, max_steps: int, base: float) -> float:
    """``tau = base`` at every step (MoCo's fixed 0.999; BYOL ablations, PROTOCOLS.md s.7)."""
    return float(base)


def build_momentum_schedule(name: str) -> Callable[[int, int, float], float]:
    """The schedule function registered as ``name`` (``"cosine"`` or ``"constant"``)."""
    return MOMENTUM_SCHEDULE_REGISTRY.get(name)


class MomentumTargetMixin:
    """One EMA code path for every method with a momentum network (BYOL's target, MoCo's
    key encoder): ``target_backbone`` / ``target_projector`` track ``backbone`` / ``projector``
    with ``tau`` from ``self.tau_schedule(step, max_steps, self.tau_base)``.
    """

    @torch.no_grad()
    def momentum_update(self, tau: float) -> None:
        """xi <- tau * xi + (1 - tau) * theta (BYOL Sec. 3.1, MoCo Eq. 2); buffers untouched."""
        ema_update_(self.target_backbone, self.backbone, tau)
        ema_update_(self.target_projector, self.projector, tau)

    def momentum_hook(self):
        """The hook that calls ``momentum_update`` after every optimizer step."""
        from ssl_zoo.engine.momentum_hook import MomentumUpdateHook

        return MomentumUpdateHook(self.momentum_update, lambda k, K: self.tau_schedule(k, K, self.tau_base))
