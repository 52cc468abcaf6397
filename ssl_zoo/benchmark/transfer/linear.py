"""The linear transfer protocol on cached features (PROTOCOLS.md s.5, BYOL App. D).

1. Fit the L2-regularised logistic regression (:mod:`.lbfgs`) on train for each of the 45
   lambdas (warm-started path), score each on validation with the dataset's metric.
2. Refit on train + val with the chosen lambda (warm-started from its train solution).
3. Score test once.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, Sequence, Tuple

import torch

from ssl_zoo.benchmark.transfer.basis import basis_or_none
from ssl_zoo.benchmark.transfer.lbfgs import fit_logistic, logistic_scores, sklearn_C, sweep_regularisation
from ssl_zoo.benchmark.transfer.metrics import score_fn

__all__ = ["LinearTransferConfig", "solver_targets", "run_linear_transfer"]


@dataclass
class LinearTransferConfig:
    """``BENCHMARK.TRANSFER.LINEAR``: the lambda grid and the solver's stopping rule."""

    lambdas: Sequence[float]
    tol: float = 1e-4
    max_iter: int = 1000
    precondition: bool = True


def solver_targets(targets: torch.Tensor, dtype: torch.dtype, device: torch.device) -> Tuple[torch.Tensor, object]:
    """``(y, mask)`` for :func:`fit_logistic`: int labels as they are (mask None); multi-label 1/0/-1
    targets -> 0/1 floats and a mask that drops the 0s ("difficult" only: ignored in training)."""
    if targets.dim() == 1:
        return targets.to(device), None
    t = targets.to(device)
    return (t > 0).to(dtype), (t != 0).to(dtype)


def run_linear_transfer(feats: Dict[str, torch.Tensor], targets: Dict[str, torch.Tensor], num_classes: int,
                        metric: str, c: LinearTransferConfig) -> Dict:
    """Sweep on train / val, refit on train + val, score test.

    Args:
        feats: "train", "val", "test" -> ``[N_s, D]`` features (same device and dtype).
        targets: the same splits -> int64 ``[N_s]`` or int8 ``[N_s, C]`` (1 / 0 / -1).
        num_classes: C.
        metric: "top1", "mean_per_class" or "voc11_map".

    Returns:
        A result row: the test score, the chosen lambda (and its scikit-learn ``C`` on train + val),
        the validation score of every lambda, iterations, seconds.
    """
    t0 = time.perf_counter()
    score = score_fn(metric)
    x_tr, x_va, x_te = feats["train"], feats["val"], feats["test"]
    y_tr, m_tr = solver_targets(targets["train"], x_tr.dtype, x_tr.device)
    sweep = sweep_regularisation(x_tr, y_tr, x_va, targets["val"], score, num_classes, list(c.lambdas), train_mask=m_tr,
                                 tol=c.tol, max_iter=c.max_iter, precondition=c.precondition)
    lam = sweep.best_lambda
    x_all = torch.cat([x_tr, x_va])
    y_all, m_all = solver_targets(torch.cat([targets["train"], targets["val"]]), x_tr.dtype, x_tr.device)
    final = fit_logistic(x_all, y_all, lam, num_classes, init=sweep.best_fit, mask=m_all, tol=c.tol,
                         max_iter=c.max_iter, basis=basis_or_none(x_all, c.precondition))
    test = float(score(logistic_scores(final, x_te), targets["test"]))
    return {"mode": "linear", "score": test, "best_lambda": lam, "sklearn_C": sklearn_C(lam),
            "val_score": sweep.val_scores[sweep.best_index],
            "val_score_per_lambda": {f"{l:.3g}": round(s, 3) for l, s in zip(sweep.lambdas, sweep.val_scores)},
            "lbfgs_iterations": sum(sweep.iterations) + final.iterations, "sweep_seconds": sweep.seconds,
            "seconds": time.perf_counter() - t0}
