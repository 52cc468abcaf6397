#!/usr/bin/env python
"""Write the Middlebury 2014 "motorcycle" stereo pair shipped with scikit-image as a tiny NYU Depth v2
labeled set (``nyu_depth_v2_labeled.mat`` + ``splits.mat``), for a smoke test of ``--task depth`` on
real pixels. NOT a benchmark: one scene, overlapping crops.

Depth from the ground-truth disparity with the calibration that ``skimage.data.stereo_motorcycle``
documents for its 4x-downsampled images (focal 994.978 px, baseline 193.001 mm, principal-point
offset doffs 31.086 px): ``Z = f * B / (d + doffs)`` (Middlebury 2014's formula), about 2.1-5.0 m.
Pixels without ground truth (non-finite disparity) get depth 0, i.e. invalid.

Frames: 4:3 windows of the 741x500 left image (two rows x three columns of 500x375 crops), each
resized to NYU's 640x480 (image bilinear, depth nearest); the first ``--num-train`` frames form
``trainNdxs`` and the rest ``testNdxs``.

Usage::

    python tools/make_middlebury_nyu.py --out /tmp/middlebury_nyu [--num-train 4]
"""
import argparse
import os
import sys

import numpy as np
import skimage.data
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from ssl_zoo.data.readers.nyu_depth import MAT_NAME, SPLITS_NAME, write_nyu_labeled, write_nyu_splits  # noqa: E402

FOCAL_PX, BASELINE_MM, DOFFS_PX = 994.978, 193.001, 31.086
NYU_SIZE = (640, 480)  # (width, height)


def disparity_to_depth(disp: np.ndarray) -> np.ndarray:
    """Metres; 0 where the disparity is not finite (no ground truth)."""
    depth = FOCAL_PX * BASELINE_MM / (disp.astype(np.float64) + DOFFS_PX) / 1000.0
    return np.where(np.isfinite(disp) & np.isfinite(depth), depth, 0.0).astype(np.float32)


def crops(h: int, w: int, ch: int = 375, cw: int = 500):
    for top in (0, h - ch):
        for left in (0, (w - cw) // 2, w - cw):
            yield top, left, ch, cw


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for nyu_depth_v2_labeled.mat and splits.mat")
    p.add_argument("--num-train", type=int, default=4, help="frames in trainNdxs (of 6); the rest are testNdxs")
    args = p.parse_args(argv)
    left, _, disp = skimage.data.stereo_motorcycle()
    depth = disparity_to_depth(disp)
    rgbs, depths = [], []
    for top, lft, ch, cw in crops(*depth.shape):
        rgbs.append(np.array(Image.fromarray(left[top:top + ch, lft:lft + cw]).resize(NYU_SIZE, Image.BILINEAR)))
        d = Image.fromarray(depth[top:top + ch, lft:lft + cw]).resize(NYU_SIZE, Image.NEAREST)
        depths.append(np.array(d, dtype=np.float32))
    n = len(rgbs)
    if not 0 < args.num_train < n:
        sys.exit(f"error: --num-train must be in 1..{n - 1}")
    os.makedirs(args.out, exist_ok=True)
    write_nyu_labeled(os.path.join(args.out, MAT_NAME), np.stack(rgbs), np.stack(depths))
    write_nyu_splits(os.path.join(args.out, SPLITS_NAME), np.arange(args.num_train), np.arange(args.num_train, n))
    valid = np.stack(depths) > 0
    print(f"wrote {n} frames ({args.num_train} train, {n - args.num_train} test) to {args.out}: depth "
          f"{np.stack(depths)[valid].min():.2f}-{np.stack(depths)[valid].max():.2f} m, {100 * valid.mean():.1f}% valid")


if __name__ == "__main__":
    main()
