"""PASCAL VOC detection AP, as the devkit and detectron2's ``PascalVOCDetectionEvaluator``.

Rules (VOCdevkit ``VOCevaldet.m``; py-faster-rcnn ``voc_eval.py``, which detectron2 ports):

* detections of a class are sorted by descending score; ties keep their input order (MATLAB's
  ``sort`` in the devkit is stable);
* a detection is matched to the ground-truth box of its image with the largest IoU
  (difficult boxes included); if that IoU is ``> threshold`` (strictly):
  - the box is difficult: the detection is ignored (neither true nor false positive),
  - the box is not yet matched: true positive, the box is now matched,
  - the box was already matched (a duplicate): false positive;
  otherwise (no box above the threshold, or an image without boxes of the class): false positive;
* recall = TP / number of non-difficult boxes; precision = TP / (TP + FP);
* AP: VOC2007's 11-point interpolation (mean over recall r in {0, 0.1, ..., 1} of the highest
  precision at recall >= r, 0 if none), or the area under the monotone precision envelope
  (VOC2010+).

IoU: detectron2 adds 1 to the predicted xmin/ymin (back to the devkit's 1-based inclusive
pixels) and computes widths as ``x2 - x1 + 1``. Our boxes are 0-based continuous
(``ssl_zoo.data.readers.voc``: ``xmin - 1, ymin - 1, xmax, ymax``), where that is exactly the plain
continuous IoU, so it is computed without the +1 here.

detectron2 reports ``AP50`` (IoU 0.5), ``AP75`` and ``AP`` = mean over IoU 0.50:0.05:0.95 of the
class-mean VOC AP (not COCO's AP), all x100; VOC2007 uses the 11-point rule at every threshold.
Deviation: a class without any non-difficult ground truth is left out of the means (detectron2
would divide by zero and report nan) and listed in ``classes_without_gt``.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

__all__ = ["voc_ap", "box_iou", "voc_eval_class", "VOCDetectionEvaluator", "IOU_THRESHOLDS"]

IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.50, 0.55, ..., 0.95


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool = True) -> float:
    """AP from a precision/recall curve (points in detection order).

    Args:
        recall, precision: float arrays [D].
        use_07_metric: VOC2007's 11-point interpolation, else the area under the envelope.
    """
    recall, precision = np.asarray(recall, np.float64), np.asarray(precision, np.float64)
    if use_07_metric:
        ap = 0.0
        # np.arange as detectron2 / py-faster-rcnn: its thresholds are not exact decimals
        # (0.30000000000000004), so a recall of exactly 3/10 does not reach the 0.3 point.
        for t in np.arange(0.0, 1.1, 0.1):
            above = precision[recall >= t]
            ap += (above.max() if above.size else 0.0) / 11.0
        return float(ap)
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # precision envelope
    i = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box [4] with boxes [G, 4] (x1y1x2y2, continuous coordinates) -> [G]."""
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = iw * ih
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return inter / np.maximum(union, np.finfo(np.float64).eps)


def voc_eval_class(detections: Sequence[tuple], ground_truth: Dict[str, tuple], iou_threshold: float = 0.5,
                   use_07_metric: bool = True) -> Optional[float]:
    """VOC AP of one class.

    Args:
        detections: ``(image_id, score, box [4])`` tuples.
        ground_truth: ``image_id -> (boxes [G, 4], difficult bool [G])`` for this class (images
            without a box of the class may be absent).
        iou_threshold: a match needs IoU strictly above it.
        use_07_metric: 11-point AP (VOC2007) or area AP.

    Returns:
        AP in [0, 1], or None when the class has no non-difficult ground truth.
    """
    npos = sum(int((~np.asarray(d, bool)).sum()) for _, d in ground_truth.values())
    if npos == 0:
        return None
    order = sorted(range(len(detections)), key=lambda i: -float(detections[i][1]))  # stable: ties keep order
    matched = {k: np.zeros(len(b), bool) for k, (b, _) in ground_truth.items()}
    tp, fp = np.zeros(len(order)), np.zeros(len(order))
    for rank, i in enumerate(order):
        image_id, _, box = detections[i]
        gt = ground_truth.get(image_id)
        if gt is None or len(gt[0]) == 0:
            fp[rank] = 1
            continue
        ious = box_iou(np.asarray(box, np.float64), np.asarray(gt[0], np.float64).reshape(-1, 4))
        j = int(ious.argmax())
        if ious[j] > iou_threshold:
            if gt[1][j]:
                continue  # difficult: ignored
            if not matched[image_id][j]:
                tp[rank], matched[image_id][j] = 1, True
            else:
                fp[rank] = 1  # duplicate detection
        else:
            fp[rank] = 1
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    recall = tp / npos
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return voc_ap(recall, precision, use_07_metric)


class VOCDetectionEvaluator:
    """Accumulates predictions and ground truth image by image; :meth:`evaluate` returns the metrics.

    Args:
        class_names: label ``i + 1`` is ``class_names[i]`` (0 = background).
        use_07_metric: 11-point AP (True for VOC2007 test, as detectron2 decides by year).
    """

    def __init__(self, class_names: Sequence[str], use_07_metric: bool = True) -> None:
        self.class_names = list(class_names)
        self.use_07_metric = use_07_metric
        self.reset()

    def reset(self) -> None:
        self._dets: Dict[int, List[tuple]] = defaultdict(list)
        self._gts: Dict[int, Dict[str, tuple]] = defaultdict(dict)
        self._images: set = set()

    def add(self, image_id: str, prediction: Dict[str, torch.Tensor], target: Dict[str, torch.Tensor]) -> None:
        """One image: ``prediction`` {boxes [D, 4], scores [D], labels [D]} and ``target``
        {boxes [G, 4], labels [G], difficult [G]}, boxes in the same (original image) coordinates."""
        if image_id in self._images:
            raise ValueError(f"image {image_id!r} was added twice")
        self._images.add(image_id)
        boxes, scores, labels = (prediction[k].detach().cpu().numpy() for k in ("boxes", "scores", "labels"))
        for b, s, c in zip(boxes, scores, labels):
            self._dets[int(c)].append((image_id, float(s), b.astype(np.float64)))
        gb, gl = target["boxes"].cpu().numpy(), target["labels"].cpu().numpy()
        gd = target["difficult"].cpu().numpy().astype(bool)
        for c in np.unique(gl):
            keep = gl == c
            self._gts[int(c)][image_id] = (gb[keep].astype(np.float64), gd[keep])

    def evaluate(self) -> Dict[str, object]:
        """``{"AP", "AP50", "AP75"}`` (x100), ``per_class_AP50`` and ``classes_without_gt``."""
        per_threshold, per_class50, missing = {}, {}, []
        for t in IOU_THRESHOLDS:
            aps = []
            for c, name in enumerate(self.class_names, start=1):
                ap = voc_eval_class(self._dets.get(c, []), self._gts.get(c, {}), t, self.use_07_metric)
                if ap is None:
                    if t == IOU_THRESHOLDS[0]:
                        missing.append(name)
                    continue
                aps.append(ap)
                if t == 0.5:
                    per_class50[name] = 100.0 * ap
            per_threshold[t] = 100.0 * float(np.mean(aps)) if aps else float("nan")
        return {"AP": float(np.mean(list(per_threshold.values()))), "AP50": per_threshold[0.5],
                "AP75": per_threshold[0.75], "per_class_AP50": per_class50, "classes_without_gt": missing,
                "num_images": len(self._images)}
