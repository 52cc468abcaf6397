"""The EMA ("momentum") target update as a hook, shared by every method with a
target / key network (BYOL, MoCo, ...).

BYOL Sec. 3.1 / PROTOCOLS.md s.2: after every online optimizer step,
``xi <- tau * xi + (1 - tau) * theta`` with ``tau`` from a schedule of the step
(cosine from tau_base to 1 over training). With gradient accumulation the hook runs
once per optimizer step, so the target is updated once per accumulated step
(PROTOCOLS.md s.7, batch-size ablation).
"""
from __future__ import annotations

from typing import Callable

from ssl_zoo.engine.hook_base import HookBase


class MomentumUpdateHook(HookBase):
    """Calls ``update_fn(tau)`` after each optimizer step, ``tau = schedule(step, max_steps)``.

    Args:
        update_fn: applies the EMA with the given tau (e.g. ``BYOL.momentum_update``).
        schedule: ``(step, max_steps) -> tau``.
    """

    def __init__(self, update_fn: Callable[[float], None], schedule: Callable[[int, int], float]) -> None:
        self.update_fn = update_fn
        self.schedule = schedule
        self.last_tau = None

    def after_step(self) -> None:
        tau = float(self.schedule(self.trainer.iter, self.trainer.max_iter))
        self.update_fn(tau)
        self.last_tau = tau
        self.trainer.put_scalar("tau", tau)
