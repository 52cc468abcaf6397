"""berHu (Laina et al. 2016, Eq. 1) and the depth metrics (delta < 1.25^k, rms, rel, log10) against
hand computations from their definitions; the NYU pre-processing (halve, centre-crop 304x228)."""
import math

import numpy as np
import pytest
import torch

from ssl_zoo.benchmark.depth.data import DepthAugment, NYUDepthDataset, centre_crop
from ssl_zoo.benchmark.depth.loss import berhu_loss
from ssl_zoo.benchmark.depth.metrics import DepthMetricSums, depth_metrics


def test_berhu_matches_the_formula_by_hand():
    pred = torch.tensor([1.5, 1.0, 5.0, 20.0])
    target = torch.tensor([1.0, 2.0, 3.0, 10.0])
    valid = torch.tensor([True, True, True, False])  # the invalid residual (10) must not set c
    # residuals 0.5, -1, 2 -> c = 0.2 * 2 = 0.4; all above c: (x^2 + c^2) / 2c
    want = ((0.25 + 0.16) / 0.8 + (1 + 0.16) / 0.8 + (4 + 0.16) / 0.8) / 3
    assert berhu_loss(pred, target, valid).item() == pytest.approx(want)
    # residuals 0.1, -0.3, 1.0 -> c = 0.2: 0.1 is in the L1 part
    pred2 = torch.tensor([1.1, 0.7, 2.0])
    target2 = torch.tensor([1.0, 1.0, 1.0])
    want2 = (0.1 + (0.09 + 0.04) / 0.4 + (1 + 0.04) / 0.4) / 3
    assert berhu_loss(pred2, target2, torch.ones(3, dtype=torch.bool)).item() == pytest.approx(want2)


def test_berhu_uses_the_absolute_residual_for_c_and_has_the_paper_gradient():
    # the largest |residual| is negative (-2): c = 0.4, not 0.2 * max(pred - target) = 0.1
    pred = torch.tensor([1.5, 0.0, 1.0], requires_grad=True)
    target = torch.tensor([1.0, 2.0, 0.9])
    loss = berhu_loss(pred, target, torch.ones(3, dtype=torch.bool))
    c = 0.4
    want = ((0.25 + c * c) / (2 * c) + (4 + c * c) / (2 * c) + 0.1) / 3
    assert loss.item() == pytest.approx(want)
    loss.backward()
    # d/dx: x/c above c, sign(x) below; c is a per-batch constant
    assert pred.grad.tolist() == pytest.approx([0.5 / c / 3, -2 / c / 3, 1 / 3])


def test_berhu_is_continuous_at_c_and_zero_when_perfect():
    c_frac = 0.2
    x = torch.tensor([5.0, 1.0 - 1e-6, 1.0 + 1e-6])  # c = 1
    per = [berhu_loss(torch.tensor([5.0, v]), torch.zeros(2), torch.ones(2, dtype=torch.bool), c_frac).item() * 2
           - (25 + 1) / 2 for v in x[1:]]
    assert per[0] == pytest.approx(per[1], abs=1e-5) == pytest.approx(1.0, abs=1e-5)
    assert berhu_loss(torch.ones(3), torch.ones(3), torch.ones(3, dtype=torch.bool)).item() == 0
    assert berhu_loss(torch.ones(3), torch.ones(3), torch.zeros(3, dtype=torch.bool)).item() == 0


def test_metrics_by_hand():
    pred = torch.tensor([1.0, 2.0, 3.8, 7.0])
    gt = torch.tensor([1.2, 2.0, 2.0, 0.0])  # the last pixel has no ground truth
    m = depth_metrics(pred, gt, gt > 0)
    # ratios max(d/d*, d*/d): 1.2, 1, 1.9 -> < 1.25: 2 of 3; < 1.5625: 2 of 3; < 1.953125: 3 of 3
    assert m["delta1"] == pytest.approx(200 / 3) and m["delta2"] == pytest.approx(200 / 3)
    assert m["delta3"] == pytest.approx(100)
    assert m["rms"] == pytest.approx(math.sqrt((0.04 + 0 + 1.8 ** 2) / 3))
    assert m["rel"] == pytest.approx((0.2 / 1.2 + 0 + 0.9) / 3)
    assert m["log10"] == pytest.approx((abs(math.log10(1 / 1.2)) + math.log10(1.9)) / 3)
    assert m["pixels"] == 3


def test_metrics_pool_pixels_over_batches():
    sums = DepthMetricSums()
    sums.update(torch.tensor([2.0]), torch.tensor([1.0]), torch.tensor([True]))
    sums.update(torch.tensor([1.0, 1.0, 1.0]), torch.tensor([1.0, 1.0, 1.0]), torch.ones(3, dtype=torch.bool))
    r = sums.result()
    assert r["rms"] == pytest.approx(math.sqrt(1 / 4)) and r["delta1"] == pytest.approx(75)


class _Frames:
    def __init__(self, rgb, depth):
        self.rgb, self.depth = rgb, depth

    def frame(self, i):
        return self.rgb[i], self.depth[i]


def test_nyu_frames_are_halved_and_centre_cropped():
    h, w = 48, 64
    rgb = np.zeros((1, h, w, 3), np.uint8)
    rgb[0, :, : w // 2] = 255  # left half white
    depth = np.tile(np.arange(w, dtype=np.float32), (1, h, 1))  # depth = column index
    frames = _Frames(rgb, depth)
    test = NYUDepthDataset(frames, [0], False, mean=(0,) * 3, std=(1,) * 3, scale=0.5, crop=(20, 28))
    x, d = test[0]
    assert x.shape == (3, 20, 28) and d.shape == (1, 40, 56)  # full-resolution target of the same region
    assert d[0, 0].tolist() == list(range(4, 60))
    assert x[0, 0, :12].min() > 0.99 and x[0, 0, 16:].max() < 0.01  # 32 -> 16 px white, crop starts at 2
    torch.manual_seed(0)
    train = NYUDepthDataset(frames, [0], True, mean=(0,) * 3, std=(1,) * 3, scale=0.5, crop=(20, 28))
    flips = set()
    for _ in range(8):
        x, d = train[0]
        assert d.shape == (1, 20, 28)
        flips.add(d[0, 0, 0].item() > d[0, 0, -1].item())
    assert flips == {True, False}  # depth flipped with the image, both ways seen
    assert centre_crop(torch.zeros(5, 7), (3, 3)).shape == (3, 3)


def test_colour_augmentation_ranges():
    torch.manual_seed(0)
    grey = torch.full((3, 4, 4), 0.5)
    aug = DepthAugment(brightness=0.1255, saturation=(1.0, 1.0), hue=0.0, grayscale_prob=0.0)
    shifts = {round(aug(grey)[0, 0, 0].item() - 0.5, 4) for _ in range(50)}
    assert max(shifts) <= 0.1255 and min(shifts) >= -0.1255 and len(shifts) > 10  # additive, as TF
    gray_all = DepthAugment(brightness=0.0, saturation=(1.0, 1.0), hue=0.0, grayscale_prob=1.0)
    out = gray_all(torch.rand(3, 4, 4))
    assert torch.allclose(out[0], out[1]) and torch.allclose(out[1], out[2])
