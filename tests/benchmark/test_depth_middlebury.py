"""tools/make_middlebury_nyu.py: Middlebury disparity -> metric depth with the calibration that
scikit-image documents for its 4x-downsampled motorcycle pair (Z = f B / (d + doffs))."""
import numpy as np
import pytest

import make_middlebury_nyu as M


def test_disparity_to_depth_by_hand():
    disp = np.array([[7.1913557, 59.9, np.inf, np.nan]], np.float32)
    z = M.disparity_to_depth(disp)
    assert z[0, 0] == pytest.approx(994.978 * 193.001 / (7.1913557 + 31.086) / 1000, rel=1e-6)  # ~5.02 m
    assert z[0, 1] == pytest.approx(994.978 * 193.001 / (59.9 + 31.086) / 1000, rel=1e-6)  # ~2.11 m
    assert z[0, 2] == 0 and z[0, 3] == 0  # no ground truth -> invalid


def test_crops_are_4_by_3_windows_inside_the_image():
    windows = list(M.crops(500, 741))
    assert len(windows) == 6
    assert all(t >= 0 and l >= 0 and t + h <= 500 and l + w <= 741 and w * 3 == h * 4 for t, l, h, w in windows)
