#!/usr/bin/env python
"""Write scikit-learn's bundled digits (1,797 8x8 grayscale images, 10 classes) as an ImageFolder.

A small real dataset that ships with a package, for ``benchmark.py --task transfer --dataset PATH``::

    python tools/export_digits_imagefolder.py --out datasets/digits
    python tools/benchmark.py --task transfer --dataset datasets/digits --weights random \\
        --config-file configs/byol/cifar10_r10.yaml

Layout: ``<out>/{train,test}/<digit>/<index>.png`` (8-bit grayscale PNGs, values 0..16 scaled to
0..255). Test = a seeded 30% of each class (the dataset has no official split); the transfer task
then holds out 10% of each class of train for validation.
"""
import argparse
import os

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def export(out: str, test_fraction: float = 0.3, seed: int = 0) -> dict:
    """Write the ImageFolder; returns the number of images per split."""
    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    rng = np.random.default_rng(seed)
    counts = {"train": 0, "test": 0}
    for c in range(10):
        idx = np.flatnonzero(digits.target == c)
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(test_fraction * len(idx)))
        for split, part in (("test", idx[:n_test]), ("train", idx[n_test:])):
            folder = os.path.join(out, split, str(c))
            os.makedirs(folder, exist_ok=True)
            for i in part:
                Image.fromarray(images[i], mode="L").save(os.path.join(folder, f"{i:04d}.png"))
            counts[split] += len(part)
    return counts


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output directory (train/ and test/ are created in it)")
    p.add_argument("--test-fraction", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    print(export(a.out, a.test_fraction, a.seed))
