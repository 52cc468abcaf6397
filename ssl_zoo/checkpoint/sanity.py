"""Is a training state worth checkpointing? Finite, not exploding weights and a finite loss.

A run that diverges often has finite but absurd weights (|w| ~ 1e28) one or two steps before
the loss turns NaN. Saving that state "poisons" the last checkpoint: resuming from it at a sane
learning rate hits NaN again. The checkpointer therefore refuses to write a state that fails
:func:`state_problem` and keeps pointing ``last_checkpoint`` at the last sane one.
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import torch

# Trained weights and BN statistics of the zoo's networks stay far below this; 1e6 leaves room for
# running variances of un-normalised inputs while catching a divergence long before fp32 overflows.
DEFAULT_MAX_ABS = 1e6


def state_problem(model_state: Dict[str, torch.Tensor], loss: Optional[float] = None,
                  max_abs: float = DEFAULT_MAX_ABS) -> Optional[str]:
    """Why ``model_state`` should not be checkpointed, or None when it is sane.

    Args:
        model_state: a state dict (floating tensors are checked; integer counters ignored).
        loss: the last step's loss (None = not checked).
        max_abs: largest |value| allowed in a floating tensor (<= 0 disables the check).

    Returns:
        e.g. ``"non-finite values in 'backbone.conv1.weight'"`` or
        ``"|value| up to 7.5e+28 in 'head.weight' (limit 1e+06)"``.
    """
    if loss is not None and not math.isfinite(loss):
        return f"the last loss is {loss}"
    for name, t in model_state.items():
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.numel() == 0:
            continue
        peak = float(t.detach().abs().max())  # inf / nan propagate
        if not math.isfinite(peak):
            return f"non-finite values in '{name}'"
        if max_abs > 0 and peak > max_abs:
            return f"|value| up to {peak:.3g} in '{name}' (limit {max_abs:.3g}, SOLVER.CHECKPOINT_MAX_ABS)"
    return None


__all__ = ["DEFAULT_MAX_ABS", "state_problem"]
