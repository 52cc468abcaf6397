"""Cross-process synchronised BatchNorm that also works on CPU (gloo).

BYOL synchronises BN statistics across devices (official code, PROTOCOLS.md s.2 [C]).
``torch.nn.SyncBatchNorm`` only runs on CUDA; :class:`AllReduceSyncBatchNorm` does the
same computation with plain ``all_reduce`` calls, so multi-process CPU runs (gloo) get
global-batch statistics too.

Forward (training, world size > 1): every rank all-reduces per channel its element
count, sum and sum of squares (from a numerically stable local ``var_mean``, reduced in
float64), normalises with the global mean / biased variance, and updates the running
statistics with the unbiased global variance, like torch's SyncBatchNorm. Backward
all-reduces the two reductions the input gradient needs (sum of ``dy`` and of
``dy * xhat``); weight and bias gradients stay local (DDP sums/averages them).

:class:`SplitBatchNorm` is the opposite tool: per-group statistics inside one process, to
simulate several devices' BN (MoCo's single-process shuffling BN).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def _is_distributed(group) -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1


class _AllReduceBatchNormFn(torch.autograd.Function):
    """Normalisation with global statistics; returns ``(y, mean, var, count)``."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps, group):
        c = x.shape[1]
        dims = [0] + list(range(2, x.dim()))
        n = x.numel() // c
        if n > 0:
            var, mean = torch.var_mean(x, dim=dims, correction=0)
            mean64, var64 = mean.double(), var.double()
            ones = torch.ones(1, dtype=torch.float64, device=x.device)
            stats = torch.cat([mean64, var64 + mean64 * mean64, ones]) * n  # [sum, sum of squares, count]
        else:  # an empty shard still takes part in the collective
            stats = torch.zeros(2 * c + 1, dtype=torch.float64, device=x.device)
        dist.all_reduce(stats, group=group)
        count = stats[-1]
        if count.item() <= 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)} "
                f"(global count {int(count.item())})"
            )
        mean64 = stats[:c] / count
        var64 = (stats[c : 2 * c] / count - mean64 ** 2).clamp_(min=0)
        mean = mean64.to(x.dtype)
        var = var64.to(x.dtype)
        invstd = torch.rsqrt(var64 + eps).to(x.dtype)
        shape = [1, c] + [1] * (x.dim() - 2)
        scale = invstd if weight is None else invstd * weight.to(x.dtype)
        shift = -mean * scale if bias is None else bias.to(x.dtype) - mean * scale
        y = torch.addcmul(shift.view(shape), x, scale.view(shape))
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.count = float(count.item())
        ctx.group = group
        ctx.mark_non_differentiable(mean, var, count)
        return y, mean, var, count

    @staticmethod
    def backward(ctx, grad_y, _grad_mean, _grad_var, _grad_count):
        x, weight, mean, invstd = ctx.saved_tensors
        c = x.shape[1]
        dims = [0] + list(range(2, x.dim()))
        shape = [1, c] + [1] * (x.dim() - 2)
        xhat = (x - mean.view(shape)) * invstd.view(shape)
        sum_dy = grad_y.sum(dims)
        sum_dy_xhat = (grad_y * xhat).sum(dims)
        grad_x = grad_w = grad_b = None
        if weight is not None:
            if ctx.needs_input_grad[1]:
                grad_w = sum_dy_xhat.to(weight.dtype)
            if ctx.needs_input_grad[2]:
                grad_b = sum_dy.to(weight.dtype)
        if ctx.needs_input_grad[0]:
            reduced = torch.cat([sum_dy, sum_dy_xhat])
            dist.all_reduce(reduced, group=ctx.group)
            mean_dy = (reduced[:c] / ctx.count).view(shape)
            mean_dy_xhat = (reduced[c:] / ctx.count).view(shape)
            g = invstd if weight is None else invstd * weight.to(x.dtype)
            # dx = w * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)), means over the
            # global batch (as torch's batch_norm_backward_elemt); xhat's memory is reused.
            grad_x = xhat.mul_(mean_dy_xhat.neg()).add_(grad_y).sub_(mean_dy).mul_(g.view(shape))
        return grad_x, grad_w, grad_b, None, None


class AllReduceSyncBatchNorm(_BatchNorm):
    """BatchNorm over the global batch of all processes, for any backend (gloo included).

    Outside training, or when ``torch.distributed`` is not initialised or has one
    process, it is exactly ``nn.BatchNorm{1,2,3}d`` (same ``F.batch_norm`` call).

    Args:
        num_features, eps, momentum, affine, track_running_stats: as ``nn.BatchNorm2d``.
        process_group: group to synchronise over (None = the default group).

    Shapes:
        ``[B, C]``, ``[B, C, L]``, ``[B, C, H, W]`` or ``[B, C, D, H, W]`` -> same shape.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: Optional[float] = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        process_group=None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype)
        self.process_group = process_group

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and _is_distributed(self.process_group)):
            return super().forward(x)
        self._check_input_dim(x)
        y, mean, var, count = _AllReduceBatchNormFn.apply(x, self.weight, self.bias, self.eps, self.process_group)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                n = float(count)
                # Running variance uses the unbiased estimate, as nn.BatchNorm / SyncBatchNorm.
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), m)
                self.running_var.lerp_((var * (n / (n - 1))).to(self.running_var.dtype), m)
        return y


_CONVERTIBLE = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def convert_sync_batchnorm(module: nn.Module, process_group=None) -> nn.Module:
    """Replace every BatchNorm by a cross-process synchronised one.

    On CUDA (parameters on a CUDA device) this is ``torch.nn.SyncBatchNorm.convert_sync_batchnorm``.
    Otherwise every module whose type is exactly ``nn.BatchNorm1d/2d/3d`` becomes an
    :class:`AllReduceSyncBatchNorm` sharing its parameters and buffers (subclasses such
    as timm's ``BatchNormAct2d`` add behaviour and are left unchanged).

    Returns:
        the converted module (``module`` itself, modified in place, unless it is a BN).
    """
    first = next(module.parameters(), None)
    if first is not None and first.is_cuda:
        return nn.SyncBatchNorm.convert_sync_batchnorm(module, process_group)
    return _convert_cpu(module, process_group)


def _convert_cpu(module: nn.Module, process_group) -> nn.Module:
    out = module
    if type(module) in _CONVERTIBLE:
        out = AllReduceSyncBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats, process_group
        )
        if module.affine:
            out.weight = module.weight
            out.bias = module.bias
        out.running_mean = module.running_mean
        out.running_var = module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
        if hasattr(module, "qconfig"):
            out.qconfig = module.qconfig
    for name, child in module.named_children():
        out.add_module(name, _convert_cpu(child, process_group))
    return out


class SplitBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics come from ``num_splits`` groups of the batch.

    Simulates ``num_splits`` devices with per-device BN inside one process, as MoCo's
    official CIFAR-10 demo (``SplitBatchNorm``, 8 splits): together with a shuffled key
    batch it is single-process shuffling BN (He et al. 2020, Sec. 3.3), so the key encoder's
    statistics come from different images than the query's and BN cannot leak the positive.

    Group g holds the samples ``g, g + G, g + 2G, ...`` of a ``[N, C, ...]`` batch (N divisible
    by G): the batch is viewed as ``[N / G, G * C, ...]`` and normalised per channel of the
    view. The running statistics are the mean over groups of the per-group updates.
    Evaluation uses the running statistics, like ``nn.BatchNorm``.
    """

    def __init__(self, num_features: int, num_splits: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, track_running_stats: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        if num_splits < 1:
            raise ValueError(f"SplitBatchNorm needs num_splits >= 1, got {num_splits}")
        if momentum is None:
            raise ValueError("SplitBatchNorm needs a momentum (cumulative averages are not supported)")
        self.num_splits = int(num_splits)

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected a [N, C, ...] input, got {x.dim()}-d")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        g = self.num_splits
        if not self.training or g == 1:
            return super().forward(x)
        n, c = x.shape[:2]
        if n % g:
            raise ValueError(f"SplitBatchNorm: batch {n} is not divisible into {g} splits")
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
        running_mean = self.running_mean.repeat(g) if self.track_running_stats else None
        running_var = self.running_var.repeat(g) if self.track_running_stats else None
        weight = self.weight.repeat(g) if self.affine else None
        bias = self.bias.repeat(g) if self.affine else None
        y = F.batch_norm(x.reshape(n // g, g * c, *x.shape[2:]), running_mean, running_var, weight, bias,
                         True, self.momentum, self.eps)
        if self.track_running_stats:
            with torch.no_grad():
                self.running_mean.copy_(running_mean.view(g, c).mean(0))
                self.running_var.copy_(running_var.view(g, c).mean(0))
        return y.view_as(x)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", num_splits={self.num_splits}"


def convert_split_batchnorm(module: nn.Module, num_splits: int) -> nn.Module:
    """Replace every ``nn.BatchNorm1d/2d/3d`` by a :class:`SplitBatchNorm` sharing its parameters
    and buffers (in place; returns the module, or the new BN if ``module`` is one)."""
    out = module
    if type(module) in _CONVERTIBLE:
        out = SplitBatchNorm(module.num_features, num_splits, module.eps, module.momentum, module.affine,
                             module.track_running_stats)
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        if module.track_running_stats:
            out.running_mean, out.running_var = module.running_mean, module.running_var
            out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, convert_split_batchnorm(child, num_splits))
    return out
