"""Mean intersection-over-union from a confusion matrix (the VOC devkit's definition).

IoU_c = TP_c / (TP_c + FP_c + FN_c), counted over every evaluated pixel of the whole set
(not averaged per image); pixels labelled ``ignore_index`` (VOC's 255 "void") are left
out. mIoU is the mean over the classes; a class absent from both the labels and the
predictions has no IoU (NaN) and is left out of the mean.
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.distributed as dist

from ssl_zoo.utils import comm

__all__ = ["confusion_matrix", "all_reduce_confusion", "iou_from_confusion"]


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = 255) -> torch.Tensor:
    """``int64 [K, K]``, rows = true class, columns = predicted class, over pixels whose label is not ignored.

    Raises:
        ValueError: a label outside ``0..K-1`` that is not ``ignore_index``.
    """
    target = target.reshape(-1).long()
    pred = pred.reshape(-1).long()
    keep = target != ignore_index
    target, pred = target[keep], pred[keep]
    if target.numel() and (target.min() < 0 or target.max() >= num_classes):
        raise ValueError(f"label {int(target.max())} outside 0..{num_classes - 1} (and not the ignore label "
                         f"{ignore_index}): set BENCHMARK.SEGMENTATION.NUM_CLASSES to the dataset's class count")
    return torch.bincount(target * num_classes + pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def all_reduce_confusion(cm: torch.Tensor) -> torch.Tensor:
    """The sum of every process's confusion matrix (identity with one process)."""
    if comm.get_world_size() > 1:
        cm = cm.clone()
        dist.all_reduce(cm)
    return cm


def iou_from_confusion(cm: torch.Tensor) -> Dict[str, object]:
    """``{"miou", "pixel_acc", "iou": per-class list (NaN where the class never occurs)}``, in percent."""
    cm = cm.double()
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
    return {"miou": 100 * iou.nanmean().item(), "pixel_acc": 100 * (tp.sum() / cm.sum().clamp(min=1)).item(),
            "iou": [100 * v for v in iou.tolist()]}
