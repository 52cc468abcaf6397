"""Schedules as pure functions of the optimizer step: learning rates and EMA decay rates (tau).

Every schedule in ``LR_SCHEDULER_REGISTRY`` has the signature
``f(step, max_steps, warmup_steps, peak_lr, **kw) -> lr`` and no state, so a resumed run
recomputes the exact lr of any iteration (nanoGPT's ``get_lr`` idea). The trainer applies
``group["lr"] = schedule(it) * group["lr_mult"]`` before each optimizer step.

BYOL (Grill et al. 2020, Sec. 3.3 / App. J.1; PROTOCOLS.md s.2): lr = 0.2 x B/256, linear
warm-up from 0 over 10 epochs, then cosine decay to 0 without restarts over the remaining
steps; K = 1000 x 1281167 // 4096 = 312,784 steps, warm-up 3,127 steps. This matches the
released code's ``byol/utils/schedules.py::learning_schedule``: ``step / warmup * peak``
during warm-up, then ``peak * (1 + cos(pi * (step - warmup) / (K - warmup))) / 2``.
"""
from __future__ import annotations

import bisect
import functools
import math
from typing import Sequence

from ssl_zoo.utils.registry import Registry

# Pure functions ``f(step, max_steps, warmup_steps, peak_lr, **kw) -> float``.
LR_SCHEDULER_REGISTRY = Registry("LR_SCHEDULER")
# Pure functions ``f(step, max_steps, base) -> tau`` of the EMA target / key network.
MOMENTUM_SCHEDULE_REGISTRY = Registry("MOMENTUM_SCHEDULE")


def cosine_factor(step: float, total: float) -> float:
    """``(1 + cos(pi step / total)) / 2``: 1 at step 0, 0 at ``total`` and after (``total <= 0``: 0).

    The half-cosine shared by the lr decay, BYOL's tau schedule and the evaluation heads.
    """
    if total <= 0:
        return 0.0
    return (math.cos(math.pi * min(step, total) / total) + 1.0) / 2.0


def total_steps(epochs: float, num_images: int, batch_size: int) -> int:
    """Number of optimizer steps of ``epochs`` passes over ``num_images`` at ``batch_size``.

    Computed as BYOL's code does (``num_epochs * num_examples // batch_size``), i.e. the floor
    is taken once over the whole run, not per epoch.

    Examples:
        >>> total_steps(1000, 1281167, 4096)  # BYOL's K (PROTOCOLS.md s.2)
        312784
        >>> total_steps(10, 1281167, 4096)  # BYOL's warm-up
        3127
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return int(epochs * num_images // batch_size)


def _linear_warmup(step: int, warmup_steps: int, peak_lr: float) -> float:
    # Starts at exactly 0 at step 0 (BYOL's code: global_step / warmup_steps * lr).
    return peak_lr * step / warmup_steps


@LR_SCHEDULER_REGISTRY.register(name="warmup_cosine")
def warmup_cosine(step: int, max_steps: int, warmup_steps: int, peak_lr: float, final_lr: float = 0.0) -> float:
    """Linear warm-up from 0 to ``peak_lr``, then one half-cosine down to ``final_lr``.

    Args:
        step: optimizer step k (0-based).
        max_steps: total steps K; the lr reaches ``final_lr`` at k = K and stays there after.
        warmup_steps: steps of linear warm-up (0 = start at the peak).
        peak_lr: lr at the end of warm-up (already batch-scaled).
        final_lr: lr at k = K (BYOL: 0).

    Returns:
        The lr at ``step``: ``peak * k / W`` for k < W, else
        ``final + (peak - final) * (1 + cos(pi * (k - W) / (K - W))) / 2``.
    """
    if step < warmup_steps:
        return _linear_warmup(step, warmup_steps, peak_lr)
    decay_steps = max_steps - warmup_steps
    if decay_steps <= 0:
        return peak_lr if step < max_steps else final_lr
    return final_lr + (peak_lr - final_lr) * cosine_factor(step - warmup_steps, decay_steps)


@LR_SCHEDULER_REGISTRY.register(name="warmup_step")
def warmup_step(
    step: int,
    max_steps: int,
    warmup_steps: int,
    peak_lr: float,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
) -> float:
    """Linear warm-up from 0 to ``peak_lr``, then ``peak_lr * gamma ** (#milestones <= step)``.

    Args:
        step: optimizer step k (0-based).
        max_steps: total steps K (unused; kept for the common signature).
        warmup_steps: steps of linear warm-up (0 = start at the peak).
        peak_lr: lr at the end of warm-up (already batch-scaled).
        milestones: steps (not epochs) at which the lr is multiplied by ``gamma``.
        gamma: multiplicative factor per milestone (MoCo v1: 0.1 at epochs 120 and 160).
    """
    del max_steps
    if step < warmup_steps:
        return _linear_warmup(step, warmup_steps, peak_lr)
    return peak_lr * gamma ** bisect.bisect_right(sorted(milestones), step)


@MOMENTUM_SCHEDULE_REGISTRY.register(name="cosine")
def cosine_momentum(step: int, max_steps: int, base: float) -> float:
    """BYOL's ``tau = 1 - (1 - base) (cos(pi k / K) + 1) / 2``: ``base`` at k=0, 1 at k=K.

    ``step`` is clamped to ``[0, max_steps]``; ``max_steps <= 0`` gives ``base``.
    """
    if max_steps <= 0:
        return float(base)
    return 1.0 - (1.0 - base) * cosine_factor(max(step, 0), max_steps)


@MOMENTUM_SCHEDULE_REGISTRY.register(name="constant")
def constant_momentum(step: int, max_steps: int, base: float) -> float:
    """``tau = base`` at every step (MoCo's fixed 0.999; BYOL ablations, PROTOCOLS.md s.7)."""
    return float(base)


def build_momentum_schedule(name: str, base: float):
    """``(step, max_steps) -> tau`` of the schedule registered as ``name`` ("cosine" or "constant")."""
    fn = MOMENTUM_SCHEDULE_REGISTRY.get(name)
    return functools.partial(fn, base=float(base))
