"""mIoU from the confusion matrix against hand counts, and the App. D.4 transforms (scale / pad with
the ignore label / crop / flip; central evaluation window)."""
import math

import numpy as np
import pytest
import torch

from ssl_zoo.benchmark.dense.schedule import describe_protocol, step_lr
from ssl_zoo.benchmark.segmentation.metrics import confusion_matrix, iou_from_confusion
from ssl_zoo.benchmark.segmentation.transforms import SegEvalTransform, SegTrainTransform


def test_miou_matches_hand_counts_and_ignores_255():
    target = torch.tensor([[0, 0, 1, 1], [1, 2, 2, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 2, 0, 0]])
    cm = confusion_matrix(pred, target, num_classes=4)
    # pixels (true, pred): (0,0) (0,1) (1,1) (1,1) (1,2) (2,2) (2,0); the 255 pixel is dropped
    assert cm.sum() == 7 and cm.tolist() == [[1, 1, 0, 0], [0, 2, 1, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    r = iou_from_confusion(cm)
    # IoU_0 = 1/(2+2-1) = 1/3; IoU_1 = 2/(3+3-2) = 1/2; IoU_2 = 1/(2+2-1) = 1/3; class 3 never occurs (NaN)
    assert r["iou"][0] == pytest.approx(100 / 3) and r["iou"][1] == pytest.approx(50)
    assert r["iou"][2] == pytest.approx(100 / 3) and math.isnan(r["iou"][3])
    assert r["miou"] == pytest.approx((100 / 3 + 50 + 100 / 3) / 3)
    assert r["pixel_acc"] == pytest.approx(100 * 4 / 7)


def test_confusion_sums_over_batches():
    a = confusion_matrix(torch.tensor([1, 0]), torch.tensor([1, 1]), 2)
    b = confusion_matrix(torch.tensor([0]), torch.tensor([0]), 2)
    assert iou_from_confusion(a + b)["miou"] == pytest.approx(100 * (0.5 + 0.5) / 2)


def test_out_of_range_label_is_a_clear_error():
    with pytest.raises(ValueError, match="NUM_CLASSES"):
        confusion_matrix(torch.tensor([0]), torch.tensor([5]), 3)


def test_train_transform_pads_with_ignore_and_crops():
    torch.manual_seed(0)
    image = np.full((10, 12, 3), 255, np.uint8)
    label = np.ones((10, 12), np.uint8)
    t = SegTrainTransform(crop=40, mean=(0.5,) * 3, std=(0.5,) * 3, scale_range=(1.0, 1.0))
    x, y = t(image, label)
    assert x.shape == (3, 40, 40) and y.shape == (40, 40) and y.dtype == torch.int64
    assert (y == 1).sum() == 120 and (y == 255).sum() == 1600 - 120  # padding is never a class
    assert torch.allclose(x[:, y == 1], torch.ones(1)) and torch.allclose(x[:, y == 255], torch.zeros(1))
    x2, y2 = SegTrainTransform(crop=8, mean=(0.5,) * 3, std=(0.5,) * 3, scale_range=(2.0, 2.0))(image, label)
    assert x2.shape == (3, 8, 8) and (y2 == 1).all()  # scaled to 20x24, then an 8x8 window


def test_eval_transform_is_the_central_window():
    image = np.zeros((6, 6, 3), np.uint8)
    label = np.arange(36, dtype=np.uint8).reshape(6, 6)
    _, y = SegEvalTransform(crop=4, mean=(0,) * 3, std=(1,) * 3)(image, label)
    assert y.tolist() == label[1:5, 1:5].tolist()
    _, y = SegEvalTransform(crop=8, mean=(0,) * 3, std=(1,) * 3, image_scale=0.5)(image, label)
    assert y.shape == (8, 8) and (y[3:, :] == 255).all() and (y[:, 3:] == 255).all()


def test_step_schedule_and_protocol_name():
    assert [step_lr(1.0, i, 100) for i in (0, 69, 70, 89, 90, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    assert describe_protocol({"A": 1, "B": 2}, {"A": 1, "B": 2}) == "paper"
    assert describe_protocol({"A": 1, "B": 3}, {"A": 1, "B": 2}) == "budget: B=3 (paper 2)"
