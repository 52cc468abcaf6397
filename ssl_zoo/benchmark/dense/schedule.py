"""The fine-tuning schedule of the dense tasks and how a run names it.

BYOL App. D.4 (segmentation): SGD, the learning rate multiplied by 0.1 at 70% and 90% of
training. App. D.6 (depth) states no decay; we use the same steps there (our choice).
"""
from __future__ import annotations

from typing import Dict, Sequence

__all__ = ["step_lr", "describe_protocol"]


def step_lr(base_lr: float, iteration: int, total: int, steps: Sequence[float] = (0.7, 0.9),
            gamma: float = 0.1) -> float:
    """``base_lr * gamma**k`` where k counts the fractions in ``steps`` that ``iteration / total`` has reached."""
    k = sum(1 for s in steps if iteration >= round(s * total))
    return base_lr * gamma ** k


def describe_protocol(actual: Dict[str, object], paper: Dict[str, object]) -> str:
    """``"paper"`` when every value equals the paper's, else ``"budget: KEY=value (paper p), ..."``.

    Results name their schedule, so a CPU-sized run is never read as a paper number.
    """
    diffs = [f"{k}={actual[k]} (paper {paper[k]})" for k in paper if actual.get(k) != paper[k]]
    return "paper" if not diffs else "budget: " + ", ".join(diffs)
