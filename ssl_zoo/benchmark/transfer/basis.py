"""The principal-axes basis of a feature matrix: an exact change of variables for the transfer solver.

Frozen network features are badly conditioned (a ResNet's channel variances span many orders of
magnitude), which is what makes plain L-BFGS on the logistic objective need hundreds of iterations
per lambda. In the basis of the feature covariance's eigenvectors the L2 penalty is unchanged
(``||W V||_F = ||W||_F`` for orthogonal ``V``) and the curvature of the data term is diagonal to
first order, so a per-coordinate rescaling of the variables (:func:`diagonal_preconditioner`) turns
the problem into a well-conditioned one. The minimiser is the same: this is a reparametrisation,
not an approximation (see ``lbfgs.py``).

Centring is part of it: with ``x' = x - mean`` the logits ``W x + b = W x' + (b + W mean)`` keep the
same form with the bias ``b' = b + W mean``, which is unpenalised like ``b``; centring decouples the
bias from the weights in the Hessian.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Tuple

import torch

__all__ = ["FeatureBasis", "diagonal_preconditioner", "basis_or_none", "MAX_BASIS_DIM"]

logger = logging.getLogger(__name__)

# Above this feature dimension the D x D eigendecomposition (O(D^3), D^2 float64 memory) stops being
# cheap next to the sweep; wider features are solved by plain L-BFGS (logged).
MAX_BASIS_DIM = 8192


@dataclass
class FeatureBasis:
    """``x -> (x - mean) @ rotation`` for one feature matrix.

    Attributes:
        mean: ``[D]`` feature means.
        rotation: ``[D, D]`` orthonormal eigenvectors of the covariance (columns), in ``x``'s dtype.
        variances: ``[D]`` the covariance's eigenvalues (>= 0), float64.
        rotated: ``[N, D]`` the features in the basis, in ``x``'s dtype and device.
    """

    mean: torch.Tensor
    rotation: torch.Tensor
    variances: torch.Tensor
    rotated: torch.Tensor

    @classmethod
    def of(cls, x: torch.Tensor) -> "FeatureBasis":
        """The basis of ``x`` (``[N, D]``). The covariance and its eigendecomposition are computed in
        float64 (``D x D``; about a second for D = 2,048 on a CPU core), the rotation in ``x``'s dtype."""
        mean = x.mean(0)
        centred = x - mean
        cov = torch.mm(centred.t(), centred).double() / max(len(x), 1)
        variances, vectors = torch.linalg.eigh(cov)
        rotation = vectors.to(x.dtype)
        return cls(mean=mean, rotation=rotation, variances=variances.clamp_min(0.0), rotated=centred @ rotation)

    def to_basis(self, weight: torch.Tensor, bias: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(W [C, D], b [C])`` of the original features -> ``(W V, b + W mean)`` of the rotated ones."""
        weight, bias = weight.to(self.rotation), bias.to(self.rotation)
        return weight @ self.rotation, bias + weight @ self.mean

    def from_basis(self, weight: torch.Tensor, bias: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The inverse of :meth:`to_basis`."""
        w = weight @ self.rotation.t()
        return w, bias - w @ self.mean

    def original_gradient(self, grad: torch.Tensor) -> torch.Tensor:
        """``[C, D + 1]`` gradient w.r.t. ``[W V | b']`` -> the gradient w.r.t. ``[W | b]`` (chain rule of
        :meth:`to_basis`: ``dJ/dW = dJ/d(WV) V^T + dJ/db' mean^T``, ``dJ/db = dJ/db'``)."""
        out = torch.empty_like(grad)
        torch.mm(grad[:, :-1], self.rotation.t(), out=out[:, :-1])
        out[:, :-1].addr_(grad[:, -1], self.mean)
        out[:, -1] = grad[:, -1]
        return out


def diagonal_preconditioner(variances: torch.Tensor, strength: torch.Tensor, curvature: float) -> torch.Tensor:
    """``[C, D + 1]`` variable scales ``h^(-1/2)`` for the problem in the basis.

    The Hessian of ``J / n`` w.r.t. the weight of class c on principal axis j is about
    ``curvature * variance_j + strength_c`` (the softmax / sigmoid curvature times the feature's
    second moment, plus the penalty); the bias sees ``curvature`` (its feature is the constant 1).
    Solving for ``a = theta / scale`` makes that diagonal about 1.

    Args:
        variances: ``[D]`` eigenvalues of the feature covariance.
        strength: ``[C, 1]`` the penalty per example of each class' weights (``lambda / n``).
        curvature: the loss' second derivative scale at the start (1 / C softmax, 1 / 4 sigmoid).
    """
    scale = torch.empty(strength.shape[0], variances.numel() + 1, dtype=torch.float64, device=variances.device)
    h = curvature * variances[None, :] + strength.double()
    # an axis with no variance and no penalty does not enter the objective: leave it unscaled
    scale[:, :-1] = torch.where(h > 0, h.clamp_min(1e-300).rsqrt(), torch.ones_like(h))
    scale[:, -1] = curvature ** -0.5
    return scale


def basis_or_none(x: torch.Tensor, precondition: bool) -> "FeatureBasis | None":
    """:meth:`FeatureBasis.of` ``x`` when ``precondition`` and its width is at most :data:`MAX_BASIS_DIM`."""
    if not precondition:
        return None
    if x.shape[1] > MAX_BASIS_DIM:
        logger.info(f"{x.shape[1]}-d features: wider than {MAX_BASIS_DIM}, solved without the preconditioner")
        return None
    return FeatureBasis.of(x)
