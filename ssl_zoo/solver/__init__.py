"""Optimizers (LARS, SGD, AdamW), parameter groups, lr scaling and lr schedules."""
from ssl_zoo.solver.build import (
    NORM_LAYERS,
    OPTIMIZER_REGISTRY,
    build_lr_schedule,
    build_optimizer,
    get_param_groups,
    scaled_lr,
    scaled_lr_from_cfg,
)
from ssl_zoo.solver.lars import LARS
from ssl_zoo.solver.schedules import LR_SCHEDULER_REGISTRY, total_steps, warmup_cosine, warmup_step

__all__ = [
    "LARS",
    "LR_SCHEDULER_REGISTRY",
    "NORM_LAYERS",
    "OPTIMIZER_REGISTRY",
    "build_lr_schedule",
    "build_optimizer",
    "get_param_groups",
    "scaled_lr",
    "scaled_lr_from_cfg",
    "total_steps",
    "warmup_cosine",
    "warmup_step",
]
