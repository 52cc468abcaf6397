"""VOC AP against hand computations from the devkit's rules (VOCevaldet.m / detectron2's voc_eval)."""
import math

import numpy as np
import pytest
import torch

from ssl_zoo.benchmark.detection.voc_eval import VOCDetectionEvaluator, voc_ap, voc_eval_class

BOX = [0.0, 0.0, 10.0, 10.0]
FAR = [50.0, 50.0, 60.0, 60.0]


def gt(*boxes, difficult=None):
    return (np.array(boxes, float).reshape(-1, 4), np.array(difficult or [False] * len(boxes)))


def test_perfect_and_missed():
    assert voc_eval_class([("a", 0.9, BOX)], {"a": gt(BOX)}) == pytest.approx(1.0)
    # 2 GTs, one found: recall reaches 0.5 -> points 0, .1, ..., .5 have precision 1 -> 6/11
    assert voc_eval_class([("a", 0.9, BOX)], {"a": gt(BOX), "b": gt(BOX)}) == pytest.approx(6 / 11)


def test_duplicates_are_false_positives():
    dets = [("a", 0.9, BOX), ("a", 0.8, BOX), ("b", 0.7, BOX)]
    gts = {"a": gt(BOX), "b": gt(BOX)}
    # TP, FP (duplicate), TP: recall .5 .5 1, precision 1 .5 2/3
    assert voc_eval_class(dets, gts) == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)
    # area AP: 0.5 * 1 + 0.5 * 2/3
    assert voc_eval_class(dets, gts, use_07_metric=False) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_difficult_boxes_are_ignored():
    gts = {"a": gt(BOX, FAR, difficult=[False, True])}
    # the detection on the difficult box counts neither way; npos = 1
    assert voc_eval_class([("a", 0.9, FAR), ("a", 0.8, BOX)], gts) == pytest.approx(1.0)
    # a class whose only box is difficult has no AP (left out of the mean)
    assert voc_eval_class([("a", 0.9, BOX)], {"a": gt(BOX, difficult=[True])}) is None


def test_empty_images_and_no_detections():
    # top detection on an image without boxes: FP, then TP -> precision .5 at recall 1
    assert voc_eval_class([("empty", 0.9, BOX), ("a", 0.8, BOX)], {"a": gt(BOX)}) == pytest.approx(0.5)
    assert voc_eval_class([], {"a": gt(BOX)}) == 0.0


def test_ties_keep_input_order_and_threshold_is_strict():
    # equal scores: the devkit's stable sort keeps input order (FP first here)
    assert voc_eval_class([("a", 0.5, FAR), ("a", 0.5, BOX)], {"a": gt(BOX)}) == pytest.approx(0.5)
    assert voc_eval_class([("a", 0.5, BOX), ("a", 0.5, FAR)], {"a": gt(BOX)}) == pytest.approx(1.0)
    # IoU exactly 0.5 (devkit: GT 1..10 x 1..10, prediction 1..10 x 1..5 with the +1 widths) is not > 0.5
    assert voc_eval_class([("a", 0.9, [0.0, 0.0, 10.0, 5.0])], {"a": gt(BOX)}) == 0.0
    assert voc_eval_class([("a", 0.9, [0.0, 0.0, 10.0, 5.0])], {"a": gt(BOX)}, iou_threshold=0.45) == pytest.approx(1.0)


def test_eleven_points_use_detectrons_arange():
    # recall exactly 3/10 does not reach np.arange's 0.30000000000000004: 3 points, not 4
    assert voc_ap(np.array([0.1, 0.2, 0.3]), np.ones(3)) == pytest.approx(3 / 11)


def _pred(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "scores": torch.tensor(scores),
            "labels": torch.tensor(labels)}


def _target(boxes, labels, difficult=None):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels),
            "difficult": torch.tensor(difficult or [False] * len(labels))}


def test_evaluator_ap_over_iou_thresholds():
    ev = VOCDetectionEvaluator(["cat", "dog", "ship"])
    # cat: IoU 0.72 (a TP at 0.50 ... 0.70: 5 of 10 thresholds); dog: perfect; ship: no GT
    ev.add("1", _pred([[0, 0, 10, 7.2], [20, 20, 30, 30]], [0.9, 0.8], [1, 2]), _target([BOX, [20, 20, 30, 30]], [1, 2]))
    ev.add("2", _pred([], [], []), _target([], []))  # an empty image
    r = ev.evaluate()
    assert r["AP50"] == pytest.approx(100.0) and r["AP75"] == pytest.approx(50.0)
    assert r["AP"] == pytest.approx((50.0 + 100.0) / 2)
    assert r["per_class_AP50"] == {"cat": pytest.approx(100.0), "dog": pytest.approx(100.0)}
    assert r["classes_without_gt"] == ["ship"] and r["num_images"] == 2
    with pytest.raises(ValueError, match="added twice"):
        ev.add("2", _pred([], [], []), _target([], []))
    assert math.isnan(VOCDetectionEvaluator(["a"]).evaluate()["AP50"])
