#!/usr/bin/env python
"""Build ``ssl_zoo/data/builtin/cifar10_5k.zip``: the small CIFAR-10 subset shipped with ssl_zoo.

Reads the ImageFolder-layout CIFAR-10 JPEG archives (``train/<class>/NNNN.jpg`` and
``test/<class>/NNNN.jpg``), checks them against ``SHA256SUMS``, picks a class-balanced
seeded subset (500 train + 100 test images per class = 5,000 + 1,000) and writes the
ORIGINAL JPEG bytes (no re-encoding, so pixels are exactly those of the source copy)
into a deterministic zip: same inputs + seed -> byte-identical output.

Examples::

    python tools/make_builtin_dataset.py \
        --src ../shared/data --out ssl_zoo/data/builtin/cifar10_5k.zip
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import zipfile
from collections import defaultdict
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout
from ssl_zoo.utils.file_io import file_digest  # noqa: E402

# Fixed timestamp so the archive does not depend on when it was built.
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)

README = """CIFAR-10 subset shipped with ssl_zoo (builtin_cifar10_train / builtin_cifar10_test)
====================================================================================

Contents: {n_train} training images ({per_train} per class) and {n_test} test images
({per_test} per class) of CIFAR-10, 32x32 RGB, in ImageFolder layout:
train/<class>/NNNN.jpg and test/<class>/NNNN.jpg. Classes: {classes}.

Selection: class-balanced random subset, seed {seed}, of the JPEG copy of CIFAR-10
(archives cifar10-train.zip / cifar10-test.zip, SHA-256 {sha_train} / {sha_test}).
File bytes are copied unchanged from that JPEG copy (no re-encoding); note that the
JPEG copy is itself lossy with respect to the original CIFAR-10 python arrays.
Built by tools/make_builtin_dataset.py.

Source / licence
----------------
CIFAR-10: Alex Krizhevsky, "Learning Multiple Layers of Features from Tiny Images",
Technical Report, University of Toronto, 2009. https://www.cs.toronto.edu/~kriz/cifar.html
The images are a subset of the 80 Million Tiny Images collection; CIFAR-10 is
distributed by its authors for research use. Cite the report above when using it.
This subset is included for tests, tutorials and quick smoke runs only.
"""


def verify_checksums(src: str, names: List[str]) -> Dict[str, str]:
    """Check ``names`` in ``src`` against ``src/SHA256SUMS``; returns name -> digest."""
    expected = {}
    with open(os.path.join(src, "SHA256SUMS")) as f:
        for line in f:
            if line.strip():
                digest, name = line.split()
                expected[name.lstrip("*")] = digest
    out = {}
    for name in names:
        got = file_digest(os.path.join(src, name))
        if expected.get(name) != got:
            raise RuntimeError(f"Checksum mismatch for {os.path.join(src, name)}: {got} != {expected.get(name)}")
        out[name] = got
    return out


def select(zf: zipfile.ZipFile, split: str, per_class: int, seed: int) -> Dict[str, List[str]]:
    """Pick ``per_class`` member names per class of ``split``, seeded, independent of zip order."""
    by_class: Dict[str, List[str]] = defaultdict(list)
    for name in zf.namelist():
        parts = name.split("/")
        if len(parts) == 3 and parts[0] == split and parts[2].lower().endswith(".jpg"):
            by_class[parts[1]].append(name)
    chosen = {}
    for cls in sorted(by_class):
        files = sorted(by_class[cls])
        if len(files) < per_class:
            raise RuntimeError(f"class {cls} of {split} has {len(files)} < {per_class} images")
        # One RNG per (split, class): the pick of a class never depends on the others.
        rng = random.Random(f"{seed}-{split}-{cls}")
        chosen[cls] = sorted(rng.sample(files, per_class))
    return chosen


def _write(zout: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED  # JPEG bytes do not deflate; keep them verbatim
    info.external_attr = 0o644 << 16
    zout.writestr(info, data)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data"), help="folder with cifar10-{train,test}.zip + SHA256SUMS")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "ssl_zoo", "data", "builtin", "cifar10_5k.zip"))
    p.add_argument("--train-per-class", type=int, default=500)
    p.add_argument("--test-per-class", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    sums = verify_checksums(args.src, ["cifar10-train.zip", "cifar10-test.zip"])
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    classes = None
    with zipfile.ZipFile(tmp, "w") as zout:
        for split, per_class in (("train", args.train_per_class), ("test", args.test_per_class)):
            with zipfile.ZipFile(os.path.join(args.src, f"cifar10-{split}.zip")) as zin:
                chosen = select(zin, split, per_class, args.seed)
                classes = classes or sorted(chosen)
                for cls in sorted(chosen):
                    for name in chosen[cls]:
                        _write(zout, name, zin.read(name))
        _write(zout, "README.txt", README.format(
            n_train=10 * args.train_per_class, per_train=args.train_per_class,
            n_test=10 * args.test_per_class, per_test=args.test_per_class,
            classes=", ".join(classes), seed=args.seed,
            sha_train=sums["cifar10-train.zip"], sha_test=sums["cifar10-test.zip"]).encode())
    os.replace(tmp, args.out)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB), sha256 {file_digest(args.out)}")


if __name__ == "__main__":
    main()
