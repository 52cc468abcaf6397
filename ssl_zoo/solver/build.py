"""Optimizers and lr schedules from the config (the only place that reads ``cfg.SOLVER``).

Parts take explicit arguments (``LARS``, ``get_param_groups``, ``scaled_lr``, the schedule
functions); ``build_optimizer`` and ``build_lr_schedule`` map ``cfg.SOLVER.*`` onto them.

The trainer sets, before every optimizer step (``ssl_zoo.engine.hooks.LRScheduler``)::

    lr = schedule(iteration)
    for group in optimizer.param_groups:
        if group["fixed_lr"]:
            group["lr"] = group["base_lr"]      # constant: scaled peak lr x lr_mult
        else:
            group["lr"] = lr * group["lr_mult"]

Per-parameter lr rules travel explicitly: a method declares them from its config
(``SSLMethod.lr_rules(cfg)`` -> list of :class:`LRRule`) and the engine hands them to
``build_optimizer``. A rule applies to the parameters whose name starts with its prefix:

- ``lr_mult`` (float): multiplies the schedule (BYOL's predictor, PROTOCOLS.md s.7).
- ``fixed_lr`` (bool): the lr stays at the scaled peak lr x ``lr_mult`` for the whole run,
  no warm-up and no decay (SimSiam's predictor: Chen & He 2021, Table 1c; official
  ``main_simsiam.py --fix-pred-lr`` sets the predictor group to ``init_lr`` every epoch).
- ``bias_norm_only`` (bool): the rule applies only to bias / norm parameters (Barlow Twins:
  lr 0.0048 for biases and BN vs 0.2 for weights, official ``main.py`` -> ``lr_mult`` 0.024).
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from ssl_zoo.solver.lars import LARS
from ssl_zoo.solver.schedules import LR_SCHEDULER_REGISTRY
from ssl_zoo.utils.registry import Registry

__all__ = [
    "LRRule",
    "OPTIMIZER_REGISTRY",
    "LR_SCHEDULER_REGISTRY",
    "NORM_LAYERS",
    "get_param_groups",
    "scaled_lr",
    "scaled_lr_from_cfg",
    "build_optimizer",
    "build_lr_schedule",
]

# name -> optimizer class ``cls(param_groups, **kwargs)``. ``build_optimizer`` passes each only the
# keywords its signature declares (SGD gets no ``eta``, AdamW no ``momentum``), so a new optimizer
# needs no change there.
OPTIMIZER_REGISTRY = Registry("OPTIMIZER")
OPTIMIZER_REGISTRY.register(name="LARS")(LARS)  # BYOL's optimizer (PROTOCOLS.md s.2)
OPTIMIZER_REGISTRY.register(name="SGD")(torch.optim.SGD)  # MoCo v2, SimSiam; weight decay coupled to the gradient
OPTIMIZER_REGISTRY.register(name="AdamW")(torch.optim.AdamW)  # decoupled weight decay (e.g. ViT backbones)

# Modules whose every parameter is a normalisation parameter (excluded from wd and LARS).
NORM_LAYERS: Tuple[type, ...] = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)
if hasattr(nn, "RMSNorm"):
    NORM_LAYERS = NORM_LAYERS + (nn.RMSNorm,)


@dataclass(frozen=True)
class LRRule:
    """An lr rule for the parameters named ``prefix...`` (``""`` = every parameter).

    Attributes:
        prefix: parameter-name prefix, e.g. ``"predictor."``.
        lr_mult: multiplies the lr (rules that match the same parameter multiply).
        fixed_lr: the lr stays at the scaled peak lr x ``lr_mult`` (no warm-up, no decay).
        bias_norm_only: apply only to bias / norm parameters.
    """

    prefix: str = ""
    lr_mult: float = 1.0
    fixed_lr: bool = False
    bias_norm_only: bool = False


def _apply_rules(name: str, bias_or_norm: bool, rules: Sequence[LRRule]) -> Tuple[float, bool]:
    """``(lr_mult, fixed_lr)`` of parameter ``name``: the product / any of the matching rules."""
    mult, fixed = 1.0, False
    for rule in rules:
        if name.startswith(rule.prefix) and (bias_or_norm or not rule.bias_norm_only):
            mult *= float(rule.lr_mult)
            fixed = fixed or bool(rule.fixed_lr)
    return mult, fixed


def get_param_groups(model: nn.Module, weight_decay: float, exclude_bias_and_norm: bool = True,
                     lr_rules: Sequence[LRRule] = ()) -> List[dict]:
    """Splits the trainable parameters of ``model`` into optimizer param groups.

    A parameter is "bias or norm" when it belongs to a normalisation layer (``NORM_LAYERS``: any
    BatchNorm/SyncBatchNorm, GroupNorm, LayerNorm, InstanceNorm, ...) or has ``ndim <= 1`` (every
    bias, and norm affine parameters of layers we do not know). With ``exclude_bias_and_norm`` such
    parameters get ``weight_decay=0`` and ``lars_exclude=True`` (BYOL, PROTOCOLS.md s.2); the others
    get ``weight_decay`` and ``lars_exclude=False``.

    Parameters with ``requires_grad=False`` (e.g. BYOL's EMA target network) are skipped, as are
    repeats of a shared (tied) parameter.

    ``lr_rules`` (:class:`LRRule`, module docstring) give each parameter its ``lr_mult`` and
    ``fixed_lr``; parameters are grouped by (excluded, lr_mult, fixed_lr).

    Args:
        model: the module to optimise (pass the unwrapped model, not the DDP wrapper, so names are clean).
        weight_decay: weight decay of the regular group.
        exclude_bias_and_norm: False = every parameter is regular (one group per lr rule).
        lr_rules: the method's lr rules (``SSLMethod.lr_rules(cfg)``).

    Returns:
        A list of dicts with keys ``params``, ``param_names`` (torch's optional key, used in
        ``state_dict``), ``weight_decay``, ``lars_exclude``, ``lr_mult``, ``fixed_lr``. Empty groups
        are omitted; regular groups come before excluded ones, in order of first appearance.
    """
    groups: Dict[Tuple[bool, float, bool], dict] = {}
    seen = set()

    def visit(module: nn.Module, prefix: str) -> None:
        is_norm = isinstance(module, NORM_LAYERS)
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            bias_or_norm = is_norm or param.ndim <= 1
            excluded = exclude_bias_and_norm and bias_or_norm
            mult, fixed = _apply_rules(prefix + name, bias_or_norm, lr_rules)
            group = groups.setdefault((excluded, mult, fixed), {
                "params": [],
                "param_names": [],
                "weight_decay": 0.0 if excluded else weight_decay,
                "lars_exclude": excluded,
                "lr_mult": mult,
                "fixed_lr": fixed,
            })
            group["params"].append(param)
            group["param_names"].append(prefix + name)
        for child_name, child in module.named_children():
            visit(child, f"{prefix}{child_name}.")

    visit(model, "")
    # Regular groups first: readable logs, and index 0 is the main group.
    return sorted(groups.values(), key=lambda g: g["lars_exclude"])


def scaled_lr(base_lr: float, batch_size: int, reference: int = 256, rule: str = "linear") -> float:
    """Learning rate for ``batch_size`` given ``base_lr`` at ``reference`` (BYOL: 0.2 x B/256).

    Args:
        base_lr: lr at the reference batch size.
        batch_size: effective batch size of one optimizer step (global batch x accumulation steps).
        reference: reference batch size (256).
        rule: "linear" (Goyal et al. 2017; BYOL, SimCLR), "sqrt" (SimCLR App. B.1's 0.075 sqrt(B)
            form uses base_lr = 0.075 * sqrt(256) = 1.2), or "none".
    """
    if rule == "linear":
        return base_lr * batch_size / reference
    if rule == "sqrt":
        return base_lr * math.sqrt(batch_size / reference)
    if rule == "none":
        return base_lr
    raise ValueError(f"Unknown lr scaling rule '{rule}'; expected one of 'linear', 'sqrt', 'none'")


def scaled_lr_from_cfg(cfg) -> float:
    """Peak lr: SOLVER.BASE_LR scaled by SOLVER.IMS_PER_BATCH * ACCUM_STEPS vs REFERENCE_BATCH_SIZE."""
    s = cfg.SOLVER
    return scaled_lr(s.BASE_LR, s.IMS_PER_BATCH * s.ACCUM_STEPS, s.REFERENCE_BATCH_SIZE, s.LR_SCALING)


def build_optimizer(cfg, model: nn.Module, lr_rules: Sequence[LRRule] = ()) -> torch.optim.Optimizer:
    """Optimizer named SOLVER.OPTIMIZER over ``get_param_groups(model, ..., lr_rules)``.

    Each group's ``base_lr`` and initial ``lr`` are the scaled peak lr times its ``lr_mult``; the
    lr schedule overwrites ``lr`` every step, except in ``fixed_lr`` groups, where it stays
    ``base_lr``. Pass the unwrapped model (not DDP) for clean parameter names.
    """
    s = cfg.SOLVER
    ctor = OPTIMIZER_REGISTRY.get(s.OPTIMIZER)  # unknown name -> KeyError listing the known ones
    lr = scaled_lr_from_cfg(cfg)
    groups = get_param_groups(model, s.WEIGHT_DECAY, s.EXCLUDE_BIAS_AND_NORM, lr_rules)
    if not groups:
        raise ValueError("build_optimizer: the model has no parameter with requires_grad=True")
    for group in groups:
        group["base_lr"] = group["lr"] = lr * group["lr_mult"]
    options = dict(lr=lr, weight_decay=s.WEIGHT_DECAY, momentum=s.MOMENTUM, nesterov=s.NESTEROV, eta=s.LARS_ETA,
                   lr_in_momentum=s.LARS_LR_IN_MOMENTUM, betas=tuple(s.BETAS))
    accepted = inspect.signature(ctor).parameters
    return ctor(groups, **{k: v for k, v in options.items() if k in accepted})


def build_lr_schedule(cfg, iters_per_epoch: float, max_iter: int) -> Callable[[int], float]:
    """The lr of every iteration, from SOLVER.LR_SCHEDULER and friends.

    Warm-up = SOLVER.WARMUP_ITERS if > 0 else ``int(WARMUP_EPOCHS * iters_per_epoch)``;
    ``warmup_step`` milestones = ``int(epoch * iters_per_epoch)`` for epoch in SOLVER.STEPS;
    peak = ``scaled_lr_from_cfg(cfg)``; final (cosine) = FINAL_LR_FRACTION * peak.

    Args:
        cfg: the config.
        iters_per_epoch: optimizer steps per epoch. May be fractional: pass
            ``num_images / effective_batch`` to reproduce BYOL's warm-up of
            10 x 1281167 // 4096 = 3,127 steps exactly (an integer 312 would give 3,120).
        max_iter: total optimizer steps K.

    Returns:
        ``schedule(iteration) -> lr`` (pure; safe to call for any iteration after a resume).
    """
    s = cfg.SOLVER
    fn = LR_SCHEDULER_REGISTRY.get(s.LR_SCHEDULER)
    warmup = int(s.WARMUP_ITERS) if s.WARMUP_ITERS > 0 else int(s.WARMUP_EPOCHS * iters_per_epoch)
    peak = scaled_lr_from_cfg(cfg)
    extras = {
        "final_lr": s.FINAL_LR_FRACTION * peak,
        "milestones": tuple(int(e * iters_per_epoch) for e in s.STEPS),
        "gamma": s.GAMMA,
    }
    # Pass each schedule only the extra keywords it declares, so new schedules need no change here.
    accepted = inspect.signature(fn).parameters
    kwargs = {k: v for k, v in extras.items() if k in accepted}

    def schedule(iteration: int) -> float:
        return fn(iteration, max_iter, warmup, peak, **kwargs)

    schedule.warmup_steps = warmup  # type: ignore[attr-defined]  # for logging
    schedule.peak_lr = peak  # type: ignore[attr-defined]
    return schedule
