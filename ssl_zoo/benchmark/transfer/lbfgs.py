"""L2-regularised logistic regression on frozen features, solved by full-batch L-BFGS in torch.

Written here rather than calling scikit-learn because it must be faster (the 45-value sweep is the
protocol's cost): the problem is solved in the principal axes of the features with a diagonal
preconditioner (:mod:`.basis`; plain L-BFGS needs hundreds of iterations per lambda on a network's
badly conditioned features, this needs tens), in float32, on the GPU when the features are there.

The linear transfer protocol of BYOL App. D / Kornblith et al. 2019 (PROTOCOLS.md s.5):
a multinomial logistic regression on frozen features, its regularisation chosen from 45
log-spaced values in [1e-6, 1e5] on a validation split, then refit on train + val.

Objective (one convention, used everywhere in ssl_zoo; the SUM convention of both public
references: Kornblith et al.'s JAX ``linear_eval.py`` and ssl-transfer's ``C = 1/wd``)::

    J(W, b) = sum_i CE(W x_i + b, y_i) + lambda / 2 * ||W||_F^2        (bias not penalised)

Mapping to scikit-learn (>= 1.1; 1.9.1 checked): ``LogisticRegression(C=C)`` with lbfgs minimises
``C * sum_i CE_i + 1/2 ||W||^2`` with its intercept unpenalised, so

    C = 1 / lambda        (ssl-transfer's ``wd`` is our lambda; Kornblith's ``l2_regularization`` is lambda / 2)

Internally both solvers minimise ``J / n`` (sklearn: ``mean CE + 1/(2 C n) ||W||^2``, ``_logistic.py``:
``l2_reg_strength = 1.0 / (C * sw_sum)``), so sklearn's ``tol`` (scipy's ``gtol``, the largest absolute
gradient entry of ``J / n``) and our ``tol`` are the same stopping rule. ``LogisticFit.loss`` is ``J / n``.
With the sum convention the same lambda regularises the train + val refit (more examples) relatively
less than the train-only fits, as in both references.

Multi-label targets (VOC2007) use one binary logistic regression per class: for class c,
``sum over counted images of BCE + lambda/2 ||w_c||^2`` over the (image, class) pairs that are not
ignored (n_c of them), each scaled by 1 / n_c internally; per class that is exactly sklearn's binary
``LogisticRegression(C=1/lambda)`` on the counted images.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

import torch
import torch.nn.functional as F

from ssl_zoo.benchmark.transfer.basis import FeatureBasis, basis_or_none, diagonal_preconditioner

logger = logging.getLogger(__name__)

__all__ = ["regularisation_grid", "sklearn_C", "LogisticFit", "fit_logistic", "logistic_scores", "SweepResult",
           "sweep_regularisation"]


def regularisation_grid(num: int = 45, low: float = 1e-6, high: float = 1e5) -> List[float]:
    """The paper's ``num`` log-spaced values in ``[low, high]``, ascending (PROTOCOLS.md s.5)."""
    if num < 1 or not 0 < low <= high:
        raise ValueError(f"regularisation grid needs num >= 1 and 0 < low <= high, got {num}, {low}, {high}")
    return torch.logspace(math.log10(low), math.log10(high), num, dtype=torch.float64).tolist()


def sklearn_C(lam: float) -> float:
    """scikit-learn's ``C`` for our ``lambda`` (sum convention): ``1 / lambda``."""
    return 1.0 / lam


@dataclass
class LogisticFit:
    """A solved problem.

    Attributes:
        weight: ``[C, D]``; bias: ``[C]``.
        iterations: L-BFGS iterations; evaluations: objective / gradient evaluations.
        grad_max: largest absolute gradient entry of ``J / n`` at the end (converged when <= tol).
        loss: final ``J / n``.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    iterations: int
    evaluations: int
    grad_max: float
    loss: float


def _objective(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, lam: float, mask: Optional[torch.Tensor]):
    """``J / n`` and its gradient at ``theta = [W | b]`` (``[C, D + 1]``), computed by hand (no autograd
    graph: two matmuls per evaluation).

    ``y`` int64 ``[N]`` (multinomial) or float ``[N, C]`` in {0, 1} (multi-label, with ``mask``
    ``[N, C]`` float: 1 = counted, 0 = ignored).
    """
    w, b = theta[:, :-1], theta[:, -1]
    logits = torch.addmm(b, x, w.t())  # [N, C]
    if y.dim() == 1:
        logp = logits.log_softmax(dim=1)
        loss = -logp.gather(1, y[:, None]).mean()
        g = logp.exp_()
        g[torch.arange(len(y), device=y.device), y] -= 1.0
        g /= len(y)
    else:
        per_class = mask.sum(0).clamp_min(1.0)  # n_c: counted examples of each class
        bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none") * mask
        loss = (bce.sum(0) / per_class).sum()
        g = (torch.sigmoid(logits) - y) * mask / per_class
    strength = _penalty_per_example(y, mask, lam, w.shape[0], w)
    grad = torch.empty_like(theta)
    torch.mm(g.t(), x, out=grad[:, :-1])
    grad[:, :-1].addcmul_(strength, w)
    grad[:, -1] = g.sum(0)
    loss = loss + 0.5 * (strength * w.pow(2)).sum()
    return loss, grad


def _penalty_per_example(y: torch.Tensor, mask: Optional[torch.Tensor], lam: float, num_classes: int, like):
    """``[C, 1]`` the penalty strength of each class' weights in ``J / n``: ``lambda / n``, or ``lambda / n_c``
    (counted examples of class c) for multi-label; used by :func:`_objective` and the preconditioner."""
    if y.dim() == 1:
        return torch.full((num_classes, 1), lam / len(y), dtype=like.dtype, device=like.device)
    return (lam / mask.sum(0).clamp_min(1.0))[:, None].to(like)


def fit_logistic(x: torch.Tensor, y: torch.Tensor, lam: float, num_classes: int, init: Optional[LogisticFit] = None,
                 mask: Optional[torch.Tensor] = None, tol: float = 1e-4, max_iter: int = 1000,
                 history: int = 10, basis: Optional[FeatureBasis] = None) -> LogisticFit:
    """Minimise the objective of the module docstring by full-batch L-BFGS (strong Wolfe line search).

    With ``basis`` (:class:`FeatureBasis` of ``x``) the problem is solved in the principal axes of
    the features with the variables rescaled by :func:`diagonal_preconditioner`: the same minimiser
    (an exact change of variables), the same stopping rule (evaluated on the gradient w.r.t. the
    original ``W, b``), and far fewer iterations on badly conditioned features. It is L-BFGS with a
    curvature-aware initial inverse Hessian instead of a multiple of the identity.

    Args:
        x: ``[N, D]`` features (float32 or float64; the problem is solved in that dtype and device).
        y: int64 ``[N]`` class indices, or float ``[N, C]`` 0/1 multi-label targets.
        lam: lambda of the sum convention (>= 0); sklearn ``C = 1 / lam``.
        num_classes: C.
        init: warm start (a previous solution), else zeros (Kornblith et al.'s initialisation).
        mask: multi-label only: ``[N, C]`` 1 = counted, 0 = ignored (VOC "difficult").
        tol: stop when the largest absolute gradient entry of ``J / n`` w.r.t. ``W, b`` is <= tol
            (scikit-learn's ``tol``).
        max_iter: at most this many iterations (Kornblith: 1000).
        history: L-BFGS memory (scipy's default 10, as scikit-learn).
        basis: solve in this basis of ``x`` (see above); None = plain L-BFGS on ``W, b``.

    Returns:
        :class:`LogisticFit` (in the original coordinates).
    """
    if y.dim() == 2 and mask is None:
        mask = torch.ones_like(y, dtype=x.dtype)
    y = y.to(x.dtype) if y.dim() == 2 else y
    weight = torch.zeros(num_classes, x.shape[1], dtype=x.dtype, device=x.device)
    bias = torch.zeros(num_classes, dtype=x.dtype, device=x.device)
    if init is not None:
        weight, bias = init.weight.to(weight), init.bias.to(bias)
    if basis is not None:
        if basis.rotated.shape != x.shape:
            raise ValueError(f"the basis is of features {tuple(basis.rotated.shape)}, not of x {tuple(x.shape)}")
        weight, bias = basis.to_basis(weight, bias)
        x = basis.rotated
        curvature = 0.25 if y.dim() == 2 else 1.0 / max(num_classes, 2)
        scale = diagonal_preconditioner(basis.variances.to(x.device),
                                        _penalty_per_example(y, mask, lam, num_classes, x), curvature).to(x.dtype)
    else:
        scale = torch.ones(num_classes, x.shape[1] + 1, dtype=x.dtype, device=x.device)
    a = (torch.cat([weight, bias[:, None]], 1) / scale).requires_grad_(True)
    change_tol = 1e-12 if x.dtype == torch.float64 else 1e-9
    # max_iter=1 per step(): the stopping rule is checked between iterations, on the original gradient
    # torch's own stopping tests are off (tolerance 0: it stops only on a non-descent direction); its
    # directional-derivative test at tolerance_change would stop short of tol in rescaled variables
    opt = torch.optim.LBFGS([a], lr=1.0, max_iter=1, max_eval=30, tolerance_grad=0.0, tolerance_change=0.0,
                            history_size=history, line_search_fn="strong_wolfe")
    last = {"evals": 0}

    def evaluate():
        if "a" in last and torch.equal(last["a"], a.detach()):
            return  # torch's step() re-evaluates the point its previous line search ended on
        theta = a.detach() * scale
        with torch.no_grad():
            loss, grad = _objective(theta, x, y, lam, mask)
        original = basis.original_gradient(grad) if basis is not None else grad
        last.update(a=a.detach().clone(), loss=loss, grad=grad * scale, grad_max=float(original.abs().max()))
        last["evals"] += 1

    def closure():
        evaluate()
        a.grad = last["grad"].clone()
        return last["loss"]

    evaluate()
    iterations = stalled = 0
    while last["grad_max"] > tol and iterations < max_iter:
        before, loss_before = last["a"], float(last["loss"])
        opt.step(closure)
        iterations += 1
        evaluate()
        # No progress possible at this precision: the point did not move, or the objective changed by less
        # than tolerance_change for 5 iterations in a row (torch's rule stops at the first; near the optimum
        # a well-scaled step can change J / n by less than 1e-12 and still shrink the gradient a lot).
        stalled = stalled + 1 if abs(float(last["loss"]) - loss_before) < change_tol else 0
        if torch.equal(before, last["a"]) or stalled >= 5:
            break
    theta = a.detach() * scale
    weight, bias = theta[:, :-1], theta[:, -1]
    if basis is not None:
        weight, bias = basis.from_basis(weight, bias)
    return LogisticFit(weight=weight.clone(), bias=bias.clone(), iterations=iterations, evaluations=last["evals"],
                       grad_max=last["grad_max"], loss=float(last["loss"]))


def logistic_scores(fit: LogisticFit, x: torch.Tensor) -> torch.Tensor:
    """``[N, C]`` logits of ``x`` (ranking scores for multi-label)."""
    return torch.addmm(fit.bias.to(x), x, fit.weight.to(x).t())


@dataclass
class SweepResult:
    """The regularisation sweep: validation score of every lambda and the chosen one."""

    lambdas: List[float]
    val_scores: List[float]
    iterations: List[int]
    best_index: int
    best_fit: Optional[LogisticFit] = field(default=None, repr=False)
    fits: List[LogisticFit] = field(default_factory=list, repr=False)
    seconds: float = 0.0

    @property
    def best_lambda(self) -> float:
        return self.lambdas[self.best_index]


def sweep_regularisation(train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor,
                         score: Callable[[torch.Tensor, torch.Tensor], float], num_classes: int,
                         lambdas: Sequence[float], train_mask: Optional[torch.Tensor] = None, tol: float = 1e-4,
                         max_iter: int = 1000, keep_fits: bool = False, precondition: bool = True) -> SweepResult:
    """Fit every lambda on train, score each on validation, choose the best.

    The sweep runs from the largest lambda down (a regularisation path: each solution warm-starts
    the next, less regularised problem; the first problems are nearly trivial), which reaches the
    same minimisers as the ascending order of ssl-transfer (the problems are strictly convex in W)
    in fewer iterations. Ties go to the LARGEST lambda (deliberately unlike ssl-transfer, whose
    strict ``>`` in ascending order keeps the smallest): below some lambda the warm start already
    meets the tolerance, the "fits" of all smaller lambdas are the same weights (0 iterations) and
    tie, and choosing the smallest would label that solution with a lambda it was never solved
    for, then refit almost unregularised on train + val.

    Args:
        score: ``(logits [M, C], val_y) -> float``, higher is better (the dataset's metric).
        lambdas: the grid (any order; reported ascending).
        precondition: solve every lambda in the principal axes of ``train_x`` (one
            :class:`FeatureBasis` for the whole sweep; see :func:`fit_logistic`).

    Returns:
        :class:`SweepResult` (lists in ascending lambda order).
    """
    t0 = time.perf_counter()
    order = sorted(range(len(lambdas)), key=lambda i: -lambdas[i])
    fits: List[Optional[LogisticFit]] = [None] * len(lambdas)
    scores = [0.0] * len(lambdas)
    prev = None
    basis = basis_or_none(train_x, precondition)
    for i in order:
        prev = fit_logistic(train_x, train_y, lambdas[i], num_classes, init=prev, mask=train_mask, tol=tol,
                            max_iter=max_iter, basis=basis)
        fits[i] = prev
        scores[i] = float(score(logistic_scores(prev, val_x), val_y))
        logger.info(f"lambda {lambdas[i]:.3g}: val {scores[i]:.2f} ({prev.iterations} iterations)")
    asc = sorted(range(len(lambdas)), key=lambda i: lambdas[i])
    best_pos = max(range(len(asc)), key=lambda k: (scores[asc[k]], k))  # ties: the largest lambda
    return SweepResult(lambdas=[lambdas[i] for i in asc], val_scores=[scores[i] for i in asc],
                       iterations=[fits[i].iterations for i in asc], best_index=best_pos, best_fit=fits[asc[best_pos]],
                       fits=[fits[i] for i in asc] if keep_fits else [], seconds=time.perf_counter() - t0)
