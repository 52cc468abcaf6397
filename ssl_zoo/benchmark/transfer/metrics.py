"""The three transfer metrics of BYOL Table 3 (PROTOCOLS.md s.5).

* top-1 accuracy (Food101, CIFAR, Birdsnap, SUN397, Cars, DTD);
* mean per-class accuracy: the average over classes of each class's recall, so a class with
  few test images weighs as much as a large one (Aircraft, Pets, Caltech-101, Flowers);
* VOC2007 11-point mAP: for each class, precision interpolated at recall 0, 0.1, ..., 1
  (the max precision at any recall >= r), averaged over the 11 points, then over classes
  (VOC devkit ``VOCevalcls.m`` up to VOC2009; "difficult"-only images are left out of that
  class's ranking, as the devkit's ``gt == 0``).

All return percentages (0-100).
"""
from __future__ import annotations

from typing import Optional

import torch

__all__ = ["top1_accuracy", "mean_per_class_accuracy", "voc11_average_precision", "voc11_map", "METRICS",
           "METRIC_NAMES", "score_fn"]


def top1_accuracy(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """``scores [N, C]``, ``labels [N]`` int -> % of argmax == label."""
    return 100.0 * (scores.argmax(1).cpu() == labels.cpu()).double().mean().item()


def mean_per_class_accuracy(scores: torch.Tensor, labels: torch.Tensor, num_classes: Optional[int] = None) -> float:
    """Average over the classes present in ``labels`` of that class's accuracy (recall), in %."""
    pred, labels = scores.argmax(1).cpu(), labels.cpu()
    num_classes = num_classes or scores.shape[1]
    hits = torch.zeros(num_classes, dtype=torch.float64).index_add_(0, labels, (pred == labels).double())
    counts = torch.bincount(labels, minlength=num_classes).double()
    present = counts > 0
    return 100.0 * (hits[present] / counts[present]).mean().item()


def voc11_average_precision(scores: torch.Tensor, truth: torch.Tensor) -> float:
    """11-point interpolated AP of one class.

    Args:
        scores: ``[N]`` confidence of each image.
        truth: ``[N]`` int: 1 = positive, -1 (or any value < 0) = negative, 0 = ignored
            (devkit convention: the image contains the class only as "difficult" objects).

    Returns:
        AP in [0, 1] (0 when the class has no positive).
    """
    keep = truth != 0
    scores, positive = scores[keep].double().cpu(), (truth[keep] > 0).cpu()
    num_pos = int(positive.sum())
    if num_pos == 0:
        return 0.0
    order = torch.argsort(scores, descending=True, stable=True)
    tp = positive[order].double().cumsum(0)
    fp = (~positive[order]).double().cumsum(0)
    recall, precision = tp / num_pos, tp / (tp + fp)
    ap = 0.0
    for r in torch.linspace(0, 1, 11, dtype=torch.float64):
        above = precision[recall >= r - 1e-12]
        ap += (above.max().item() if above.numel() else 0.0) / 11.0
    return ap


def voc11_map(scores: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean over classes of :func:`voc11_average_precision`, in %. ``scores``, ``truth``: ``[N, C]``."""
    aps = [voc11_average_precision(scores[:, c], truth[:, c]) for c in range(truth.shape[1])]
    return 100.0 * sum(aps) / len(aps)


METRICS = {"top1": top1_accuracy, "mean_per_class": mean_per_class_accuracy, "voc11_map": voc11_map}
METRIC_NAMES = {"top1": "top-1", "mean_per_class": "mean per-class", "voc11_map": "11-point mAP"}


def score_fn(metric: str):
    """The scoring function ``(scores, targets) -> %`` of a metric name (``METRICS``)."""
    if metric not in METRICS:
        raise ValueError(f"unknown transfer metric '{metric}'; expected one of {sorted(METRICS)}")
    return METRICS[metric]
