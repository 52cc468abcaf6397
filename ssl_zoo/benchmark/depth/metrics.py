"""Depth metrics of BYOL Table 4b / Laina et al. (Eigen et al. 2014's definitions), over valid pixels.

* ``delta_k``: percentage of pixels with ``max(d/d*, d*/d) < 1.25**k``, k = 1, 2, 3 (higher is better);
* ``rms``: ``sqrt(mean (d - d*)^2)`` in metres; ``rel``: ``mean |d - d*| / d*``; ``log10``:
  ``mean |log10 d - log10 d*|`` (lower is better),

where d is the prediction and d* the ground truth. The means run over every valid pixel of
the whole test set (sums accumulated over batches and processes, as the official
``error_metrics.m`` evaluates the stacked test predictions). Predictions are clamped to
``min_depth`` so the ratios exist.
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.distributed as dist

from ssl_zoo.utils import comm

__all__ = ["DepthMetricSums", "depth_metrics"]

_KEYS = ("count", "sq_err", "abs_rel", "abs_log10", "delta1", "delta2", "delta3")


class DepthMetricSums:
    """Running sums of the per-pixel terms; :meth:`result` reduces over processes and divides."""

    def __init__(self, device: torch.device = torch.device("cpu"), min_depth: float = 1e-3) -> None:
        self.sums = torch.zeros(len(_KEYS), dtype=torch.float64, device=device)
        self.min_depth = min_depth

    def update(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> None:
        d = pred[valid].double().clamp(min=self.min_depth)
        g = target[valid].double()
        ratio = torch.maximum(d / g, g / d)
        self.sums += torch.stack([torch.tensor(float(d.numel()), dtype=torch.float64, device=d.device),
                                  ((d - g) ** 2).sum(), ((d - g).abs() / g).sum(),
                                  (d.log10() - g.log10()).abs().sum(),
                                  *[(ratio < 1.25 ** k).sum().double() for k in (1, 2, 3)]]).to(self.sums.device)

    def result(self) -> Dict[str, float]:
        s = self.sums.clone()
        if comm.get_world_size() > 1:
            dist.all_reduce(s)
        n = s[0].clamp(min=1)
        return {"delta1": 100 * (s[4] / n).item(), "delta2": 100 * (s[5] / n).item(),
                "delta3": 100 * (s[6] / n).item(), "rms": (s[1] / n).sqrt().item(), "rel": (s[2] / n).item(),
                "log10": (s[3] / n).item(), "pixels": int(s[0].item())}


def depth_metrics(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> Dict[str, float]:
    """All metrics of one set of predictions (one process)."""
    m = DepthMetricSums(pred.device)
    m.update(pred, target, valid)
    return m.result()
