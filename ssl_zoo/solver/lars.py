"""LARS: layer-wise adaptive rate scaling (You et al. 2017, arXiv 1708.03888), as BYOL uses it.

Per parameter tensor w with gradient g, for a group that is not ``lars_exclude``:

    d     = g + wd * w                                  # weight decay BEFORE the trust ratio
    r     = eta * ||w|| / ||d||   if ||w|| > 0 and ||d|| > 0 else 1
    d     = r * d
    buf   = momentum * buf + d                          # heavy ball, buf starts at 0
    w     = w - lr * buf                                # (nesterov: w - lr * (d + momentum * buf))

A group with ``lars_exclude=True`` (BYOL: biases and BN parameters, PROTOCOLS.md s.2) skips
both the weight decay and the trust ratio, i.e. it gets plain heavy-ball momentum SGD.

Which formulation, and why. BYOL's released code (deepmind-research ``byol/utils/optimizers.py``)
does NOT use ``optax.lars``; it chains its own ``add_weight_decay -> scale_by_lars -> scale(-lr)``
where ``scale_by_lars`` applies the trust ratio and then the momentum trace
``mu = momentum * mu + r * d``, and the optimizer is rebuilt every step with the scheduled lr
(``byol_experiment.py::_update_fn``). So the learning rate multiplies the momentum buffer
**outside** the trace: ``w -= lr_t * mu_t`` (the same convention as ``torch.optim.SGD``). That is
our default. ``optax.lars`` (add_decayed_weights -> scale_by_trust_ratio -> scale(-lr) ->
trace(momentum)) instead puts lr **inside** the trace (``buf = m * buf + lr_t * r * d; w -= buf``);
pass ``lr_in_momentum=True`` for it. The two are identical while the lr is constant and differ
only while it changes (warm-up / cosine): inside, past gradients keep the lr of the step they
were taken at.

The trust-ratio guard follows BYOL's code: ratio 1 when either norm is 0 (e.g. a zero-initialised
weight, or a zero gradient), so such tensors still move by the plain momentum update.

``fused=True`` (the default) computes the trust ratios of a whole group at once (the norms
stacked into one vector, one ``torch.where``, one multi-tensor multiply) instead of a Python
loop of small kernels per parameter tensor (a ResNet-50 BYOL has ~160 tensors in its adapted
group: ~5 launches each on a GPU). The arithmetic is the same element by element, so the
result equals the loop's (tests/solver/test_lars_fused.py); groups mixing dtypes or devices
take the loop.
"""
from __future__ import annotations

from typing import Callable, Iterable, List, Optional, Union

import torch
from torch.optim import Optimizer

ParamsT = Union[Iterable[torch.Tensor], Iterable[dict]]


class LARS(Optimizer):
    """LARS with heavy-ball momentum, per-group exclusion from weight decay and adaptation.

    Args:
        params: parameters or param-group dicts. A group may set ``lars_exclude=True`` (no weight
            decay, no trust ratio) and any of the options below; see
            ``ssl_zoo.solver.build.get_param_groups``.
        lr: learning rate (the trainer overwrites ``group["lr"]`` every step).
        momentum: heavy-ball momentum (BYOL: 0.9).
        weight_decay: added to the gradient before the trust ratio (BYOL: 1.5e-6 at 1000 epochs).
        eta: trust coefficient (BYOL: 1e-3).
        nesterov: use Nesterov momentum (not in BYOL).
        lr_in_momentum: False = BYOL's code (``w -= lr * buf``, buf accumulates unscaled updates);
            True = ``optax.lars`` (buf accumulates ``lr * update``; ``w -= buf``).
        fused: trust ratios of a group in a fixed number of multi-tensor kernels (same result).

    Examples:
        >>> opt = LARS([{"params": weights}, {"params": biases, "lars_exclude": True}],
        ...            lr=0.2 * 4096 / 256, weight_decay=1.5e-6)
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        eta: float = 1e-3,
        nesterov: bool = False,
        *,
        lr_in_momentum: bool = False,
        fused: bool = True,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay: {weight_decay}")
        if eta < 0.0:
            raise ValueError(f"Invalid eta (trust coefficient): {eta}")
        if nesterov and momentum <= 0.0:
            raise ValueError("Nesterov momentum requires momentum > 0")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            eta=eta,
            nesterov=nesterov,
            lr_in_momentum=lr_in_momentum,
            lars_exclude=False,
            fused=fused,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], float]] = None) -> Optional[float]:
        """Performs one optimisation step (see the module docstring for the update)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("LARS does not support sparse gradients")
            updates = self._adapted_updates(params, group)
            self._momentum_step(params, updates, group)
        return loss

    @staticmethod
    def _adapted_updates(params: List[torch.Tensor], group: dict) -> List[torch.Tensor]:
        """Returns d = r * (g + wd * w), or g itself (a copy) for an excluded group."""
        grads = [p.grad for p in params]
        wd = group["weight_decay"]
        if group["lars_exclude"]:
            # New tensors: never modify p.grad in place (hooks / logging may read it afterwards).
            return torch._foreach_mul(grads, 1.0)
        updates = torch._foreach_add(grads, params, alpha=wd) if wd != 0 else torch._foreach_mul(grads, 1.0)
        w_norms = torch._foreach_norm(params)
        d_norms = torch._foreach_norm(updates)
        eta = group["eta"]
        if group.get("fused", True) and len({(p.dtype, p.device) for p in params}) == 1:
            wn, dn = torch.stack(w_norms), torch.stack(d_norms)  # [N]
            ratio = torch.where((wn > 0) & (dn > 0), eta * wn / dn, torch.ones_like(wn))
            torch._foreach_mul_(updates, list(ratio.to(updates[0].dtype).unbind()))
            return updates
        for d, wn, dn in zip(updates, w_norms, d_norms):
            # Stays on the device (no .item() sync); ratio 1 when either norm is 0 (BYOL's code).
            ratio = torch.where((wn > 0) & (dn > 0), eta * wn / dn, torch.ones_like(wn))
            d.mul_(ratio.to(d.dtype))
        return updates

    def _momentum_step(self, params: List[torch.Tensor], updates: List[torch.Tensor], group: dict) -> None:
        """Heavy-ball (optionally Nesterov) momentum, lr outside or inside the buffer."""
        lr, momentum = group["lr"], group["momentum"]
        if group["lr_in_momentum"]:
            torch._foreach_mul_(updates, lr)  # optax: scale(-lr) before trace(momentum)
            step_scale = 1.0
        else:
            step_scale = lr  # BYOL's code: scale(-lr) after scale_by_lars (which holds the trace)
        if momentum != 0:
            bufs = []
            for p in params:
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                bufs.append(state["momentum_buffer"])
            torch._foreach_mul_(bufs, momentum)
            torch._foreach_add_(bufs, updates)
            if group["nesterov"]:
                torch._foreach_add_(updates, bufs, alpha=momentum)  # d + m * buf (optax trace nesterov)
            else:
                updates = bufs
        torch._foreach_add_(params, updates, alpha=-step_scale)
