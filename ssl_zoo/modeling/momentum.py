"""Exponential moving average of the online network into the target network.

BYOL (Grill et al. 2020, Eq. 1; PROTOCOLS.md s.2): after every online step,
``xi <- tau * xi + (1 - tau) * theta`` with
``tau = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2`` (k = step, K = total steps).
Only parameters are averaged: the target keeps its own BN running statistics,
updated by its own forward passes in train mode (official code, PROTOCOLS.md s.2 [C]).
The tau schedules are in :mod:`ssl_zoo.solver.schedules`; each method with a target network
applies the update in its own ``after_step``.
"""
from __future__ import annotations

import torch
from torch import nn


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
