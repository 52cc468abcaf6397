#!/usr/bin/env python
"""Build a small detection / segmentation set in PASCAL VOC's exact on-disk layout from CIFAR-10.

VOC is not available offline; this makes a stand-in that every VOC reader in ssl_zoo reads
unchanged (``ssl_zoo.data.readers.voc``): 1-4 CIFAR-10 images per canvas, each upscaled 2-4x
per axis (so boxes have aspect ratios 0.5-2, like VOC's anchors assume), pasted at random
positions on a larger canvas.

Usage (the CLI is stable: the segmentation benchmark builds its data with it)::

    python tools/make_pasted_voc.py --out /tmp/pasted_voc/VOC2007 \
        --cifar-zip ../shared/data/cifar10-train.zip --cifar-zip ../shared/data/cifar10-test.zip \
        [--cifar-dir /work/datasets/cifar10] [--num-train 800] [--num-val 200] [--num-test 500] \
        [--canvas-min 160] [--canvas-max 256] [--max-objects 4] [--seed 0] [--overwrite]

Sources: each ``--cifar-zip`` / ``--cifar-dir`` holds ImageFolder trees ``train/<class>/*.jpg``
and/or ``test/<class>/*.jpg`` (a directory of class folders alone counts as ``train``). Objects of
the train and val canvases come from CIFAR *train* images, objects of the test canvases from CIFAR
*test* images; without a test tree, a disjoint sixth of the train images is held out for the test
canvases (said in README.txt). No CIFAR image is pasted twice in the whole set.

Background: a mosaic of 8x8 patches cut from random CIFAR images of the same split, upscaled by
the same 2-4x factor as objects. Why: a blurred whole image or a noise texture differs from the
pasted objects in sharpness / statistics, so a detector could find objects by "sharp natural
patch vs blurry background" without recognising anything. Patch mosaics have the objects' local
statistics and sharpness but no object-level semantics (8x8 of 32 px is too small to show a
cat), so finding and classifying objects needs what pretraining should provide: recognition of
32-px CIFAR content.

Output (``--out`` is the year directory, like ``VOCdevkit/VOC2007``)::

    Annotations/<id>.xml            VOC XML; boxes 1-based inclusive pixels (the devkit's convention)
    JPEGImages/<id>.jpg             canvases (quality 95)
    SegmentationClass/<id>.png      palette PNG, index = class index + 1, 0 background, VOC palette
    ImageSets/Main/{train,val,trainval,test}.txt and <class>_<split>.txt (id, 1 / -1 / 0=difficult only)
    ImageSets/Segmentation/{train,val,trainval}.txt
    classes.txt                     the 10 CIFAR-10 class names in label order (VOC readers use it)
    sources.tsv                     image id, object index, CIFAR split, CIFAR file of each object
    README.txt                      how it was built

Each object's box is the bounding box of its *visible* pixels (later pastes occlude earlier ones;
an overlap covers at most half of either box); an object less than half visible is marked
``difficult`` (and ignored by the VOC evaluator), one not visible at all is dropped. The build
is deterministic for a given seed and sources, and written to a temporary directory renamed onto
``--out`` at the end, so an interrupted build leaves nothing half-written.
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import zipfile
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image

Entry = Tuple[str, str, str]  # (source id: zip path or directory, member / file path, class name)

PATCH = 8          # background patch size in CIFAR pixels
CIFAR_SIZE = 32
SCALE_RANGE = (2.0, 4.0)
MAX_OVERLAP = 0.5  # an overlap may cover at most this fraction of either box


def voc_palette() -> List[int]:
    """The VOC devkit colour map (VOCcode/VOClabelcolormap.m): bits of the label spread over RGB."""
    palette = []
    for label in range(256):
        r = g = b = 0
        c = label
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette += [r, g, b]
    return palette


def _split_and_class(parts: Sequence[str]):
    """('train', 'cat', 'x.jpg') -> ('train', 'cat'); ('cat', 'x.jpg') -> ('train', 'cat')."""
    if len(parts) >= 3 and parts[-3] in ("train", "test"):
        return parts[-3], parts[-2]
    if len(parts) >= 2:
        return "train", parts[-2]
    return None


def list_sources(zips: Sequence[str], dirs: Sequence[str]) -> Dict[str, List[Entry]]:
    """CIFAR images of every source, grouped into the pools "train" and "test"."""
    pools: Dict[str, List[Entry]] = {"train": [], "test": []}
    for path in zips:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--cifar-zip: file not found: {path}")
        with zipfile.ZipFile(path) as z:
            for name in sorted(z.namelist()):
                sc = _split_and_class(name.split("/")) if name.lower().endswith((".jpg", ".png")) else None
                if sc:
                    pools[sc[0]].append((path, name, sc[1]))
    for root in dirs:
        if not os.path.isdir(root):
            raise FileNotFoundError(f"--cifar-dir: directory not found: {root}")
        for dirpath, _, files in sorted(os.walk(root)):
            for f in sorted(files):
                if f.lower().endswith((".jpg", ".png")):
                    rel = os.path.relpath(os.path.join(dirpath, f), root)
                    sc = _split_and_class(rel.split(os.sep))
                    if sc:
                        pools[sc[0]].append((root, rel, sc[1]))
    if not pools["train"]:
        raise ValueError("no CIFAR train images found: give --cifar-zip / --cifar-dir holding "
                         "train/<class>/*.jpg (or <class>/*.jpg)")
    return pools


class ImageReader:
    """Decodes entries to uint8 [32, 32, 3] arrays, keeping zip files open."""

    def __init__(self) -> None:
        self._zips: Dict[str, zipfile.ZipFile] = {}

    def __call__(self, entry: Entry) -> np.ndarray:
        src, member, _ = entry
        if os.path.isdir(src):
            img = Image.open(os.path.join(src, member))
        else:
            z = self._zips.get(src) or self._zips.setdefault(src, zipfile.ZipFile(src))
            img = Image.open(io.BytesIO(z.read(member)))
        arr = np.asarray(img.convert("RGB").resize((CIFAR_SIZE, CIFAR_SIZE), Image.BILINEAR))
        return arr

    def close(self) -> None:
        for z in self._zips.values():
            z.close()


def background(rng: np.random.Generator, pool: List[Entry], read: ImageReader, w: int, h: int) -> np.ndarray:
    """A mosaic of random 8x8 CIFAR patches at 2-4x (see the module docstring), uint8 [h, w, 3]."""
    scale = rng.uniform(*SCALE_RANGE)
    gw, gh = int(np.ceil(w / scale / PATCH)), int(np.ceil(h / scale / PATCH))
    mosaic = np.zeros((gh * PATCH, gw * PATCH, 3), np.uint8)
    sources = [read(pool[i]) for i in rng.integers(0, len(pool), size=min(8, gw * gh))]
    for gy in range(gh):
        for gx in range(gw):
            src = sources[rng.integers(len(sources))]
            y, x = rng.integers(0, CIFAR_SIZE - PATCH + 1, size=2)
            mosaic[gy * PATCH:(gy + 1) * PATCH, gx * PATCH:(gx + 1) * PATCH] = src[y:y + PATCH, x:x + PATCH]
    big = Image.fromarray(mosaic).resize((int(round(mosaic.shape[1] * scale)), int(round(mosaic.shape[0] * scale))),
                                         Image.BILINEAR)
    return np.asarray(big)[:h, :w].copy()


def _overlap_ok(box, placed) -> bool:
    x0, y0, x1, y1 = box
    for a0, b0, a1, b1 in placed:
        iw, ih = min(x1, a1) - max(x0, a0), min(y1, b1) - max(y0, b0)
        if iw > 0 and ih > 0:
            inter = iw * ih
            if inter > MAX_OVERLAP * (x1 - x0) * (y1 - y0) or inter > MAX_OVERLAP * (a1 - a0) * (b1 - b0):
                return False
    return True


def make_canvas(rng, objects: List[Entry], bg_pool: List[Entry], read: ImageReader, classes: List[str],
                canvas_range: Tuple[int, int]):
    """Paste ``objects`` on a fresh canvas.

    Returns (image uint8 [H, W, 3], label map uint8 [H, W], objects: list of (name, (x0, y0, x1, y1)
    0-based half-open visible box, difficult, entry)).
    """
    w, h = (int(v) for v in rng.integers(canvas_range[0], canvas_range[1] + 1, size=2))
    image = background(rng, bg_pool, read, w, h)
    instance = np.zeros((h, w), np.int32)  # 0 = background, k = k-th pasted object
    placed, kept = [], []
    for entry in objects:
        ow, oh = (min(int(round(CIFAR_SIZE * s)), lim) for s, lim in zip(rng.uniform(*SCALE_RANGE, size=2), (w, h)))
        for _ in range(50):
            x0, y0 = int(rng.integers(0, w - ow + 1)), int(rng.integers(0, h - oh + 1))
            box = (x0, y0, x0 + ow, y0 + oh)
            if _overlap_ok(box, placed):
                break
        else:
            continue  # no room: drop this object
        image[y0:y0 + oh, x0:x0 + ow] = np.asarray(Image.fromarray(read(entry)).resize((ow, oh), Image.BILINEAR))
        placed.append(box)
        kept.append(entry)
        instance[y0:y0 + oh, x0:x0 + ow] = len(placed)
    labels = np.zeros((h, w), np.uint8)
    out = []
    for k, (entry, box) in enumerate(zip(kept, placed), start=1):
        ys, xs = np.nonzero(instance == k)
        if len(xs) == 0:
            continue  # fully covered by later pastes
        visible = len(xs) / ((box[2] - box[0]) * (box[3] - box[1]))
        labels[instance == k] = classes.index(entry[2]) + 1
        out.append((entry[2], (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1),
                    visible < 0.5, entry))
    return image, labels, out


def voc_xml(image_id: str, w: int, h: int, objects) -> str:
    """The annotation as the devkit writes it; boxes 1-based inclusive (xmin = x0 + 1, xmax = x1)."""
    parts = [f"<annotation>\n\t<folder>VOC2007</folder>\n\t<filename>{image_id}.jpg</filename>\n"
             f"\t<source>\n\t\t<database>ssl_zoo pasted CIFAR-10</database>\n\t</source>\n"
             f"\t<size>\n\t\t<width>{w}</width>\n\t\t<height>{h}</height>\n\t\t<depth>3</depth>\n\t</size>\n"
             f"\t<segmented>1</segmented>\n"]
    for name, (x0, y0, x1, y1), difficult, _ in objects:
        parts.append(f"\t<object>\n\t\t<name>{name}</name>\n\t\t<pose>Unspecified</pose>\n"
                     f"\t\t<truncated>0</truncated>\n\t\t<difficult>{int(difficult)}</difficult>\n"
                     f"\t\t<bndbox>\n\t\t\t<xmin>{x0 + 1}</xmin>\n\t\t\t<ymin>{y0 + 1}</ymin>\n"
                     f"\t\t\t<xmax>{x1}</xmax>\n\t\t\t<ymax>{y1}</ymax>\n\t\t</bndbox>\n\t</object>\n")
    parts.append("</annotation>\n")
    return "".join(parts)


def _write_lines(path: str, lines: Sequence[str]) -> None:
    with open(path, "w") as f:
        f.write("".join(f"{line}\n" for line in lines))


def build(args) -> Dict[str, int]:
    """Write the whole set under ``args.out``; returns the number of images per split."""
    if args.canvas_min < SCALE_RANGE[1] * CIFAR_SIZE or args.canvas_max < args.canvas_min:
        raise ValueError(f"--canvas-min must be >= {int(SCALE_RANGE[1] * CIFAR_SIZE)} (largest object) and "
                         f"<= --canvas-max, got {args.canvas_min}, {args.canvas_max}")
    if os.path.exists(args.out) and os.listdir(args.out) and not args.overwrite:
        raise FileExistsError(f"--out {args.out} exists and is not empty (pass --overwrite to replace it)")
    pools = list_sources(args.cifar_zip, args.cifar_dir)
    classes = sorted({e[2] for e in pools["train"]})
    rng = np.random.default_rng(args.seed)
    train_pool = [pools["train"][i] for i in rng.permutation(len(pools["train"]))]
    note = "test objects: CIFAR-10 test images"
    if pools["test"]:
        test_pool = [pools["test"][i] for i in rng.permutation(len(pools["test"]))]
    else:  # hold out a disjoint sixth of the train images (CIFAR's own 50k/10k ratio)
        cut = len(train_pool) // 6
        test_pool, train_pool = train_pool[:cut], train_pool[cut:]
        note = "test objects: a disjoint held-out sixth of the CIFAR train images (no test tree given)"
    counts = {"train": args.num_train, "val": args.num_val, "test": args.num_test}
    tmp = f"{os.path.normpath(args.out)}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    for sub in ("Annotations", "JPEGImages", "SegmentationClass", "ImageSets/Main", "ImageSets/Segmentation"):
        os.makedirs(os.path.join(tmp, sub))
    read, palette = ImageReader(), voc_palette()
    ids: Dict[str, List[str]] = {s: [] for s in counts}
    presence: Dict[str, Dict[str, int]] = {}  # image id -> class -> 1 (non-difficult) / 0 (difficult only)
    sources, next_id, cursor = [], 1, {"train": 0, "test": 0}
    try:
        for split, n in counts.items():
            pool_name = "test" if split == "test" else "train"
            pool = test_pool if split == "test" else train_pool
            for _ in range(n):
                k = int(rng.integers(1, args.max_objects + 1))
                if cursor[pool_name] + k > len(pool):
                    raise ValueError(f"not enough CIFAR {pool_name} images for {n} {split} canvases "
                                     f"(used {cursor[pool_name]} of {len(pool)}); ask for fewer images")
                objs = pool[cursor[pool_name]:cursor[pool_name] + k]
                cursor[pool_name] += k
                image, labels, placed = make_canvas(rng, objs, pool, read, classes,
                                                    (args.canvas_min, args.canvas_max))
                image_id = f"{next_id:06d}"
                next_id += 1
                Image.fromarray(image).save(os.path.join(tmp, "JPEGImages", f"{image_id}.jpg"), quality=95)
                mask = Image.fromarray(labels, mode="P")
                mask.putpalette(palette)
                mask.save(os.path.join(tmp, "SegmentationClass", f"{image_id}.png"))
                with open(os.path.join(tmp, "Annotations", f"{image_id}.xml"), "w") as f:
                    f.write(voc_xml(image_id, image.shape[1], image.shape[0], placed))
                ids[split].append(image_id)
                flags = presence.setdefault(image_id, {})
                for j, (name, _, difficult, entry) in enumerate(placed):
                    flags[name] = max(flags.get(name, 0), 0 if difficult else 1)
                    sources.append(f"{image_id}\t{j}\t{pool_name}\t{os.path.basename(entry[0])}:{entry[1]}")
        ids["trainval"] = ids["train"] + ids["val"]
        for split, split_ids in ids.items():
            _write_lines(os.path.join(tmp, "ImageSets", "Main", f"{split}.txt"), split_ids)
            if split != "test":  # VOC publishes no segmentation test list
                _write_lines(os.path.join(tmp, "ImageSets", "Segmentation", f"{split}.txt"), split_ids)
            for c in classes:  # the devkit's per-class lists: 1 present, -1 absent, 0 difficult only
                _write_lines(os.path.join(tmp, "ImageSets", "Main", f"{c}_{split}.txt"),
                             [f"{i} {presence[i].get(c, -1):2d}" for i in split_ids])
        _write_lines(os.path.join(tmp, "classes.txt"), classes)
        _write_lines(os.path.join(tmp, "sources.tsv"), ["image_id\tobject\tcifar_split\tfile"] + sources)
        _write_lines(os.path.join(tmp, "README.txt"), [
            "Pasted CIFAR-10 in PASCAL VOC layout, built by ssl_zoo tools/make_pasted_voc.py",
            f"seed {args.seed}; canvases {args.canvas_min}-{args.canvas_max} px; 1-{args.max_objects} objects "
            f"upscaled {SCALE_RANGE[0]:g}-{SCALE_RANGE[1]:g}x per axis; background: mosaic of {PATCH}x{PATCH} "
            f"CIFAR patches at the same scale",
            "splits: " + ", ".join(f"{s} {len(v)}" for s, v in ids.items()) + f"; {note}",
            "classes (label = line number; SegmentationClass index = line number, 0 background): "
            + " ".join(classes),
            "CIFAR-10: A. Krizhevsky, Learning Multiple Layers of Features from Tiny Images, 2009.",
        ])
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        read.close()
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    os.replace(tmp, args.out)
    return {s: len(v) for s, v in ids.items()}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="the VOC year directory to write (e.g. .../VOC2007)")
    p.add_argument("--cifar-zip", action="append", default=[], help="zip of train/<class>/*.jpg and/or test/...")
    p.add_argument("--cifar-dir", action="append", default=[], help="directory of train/<class>/ and/or test/...")
    p.add_argument("--num-train", type=int, default=800)
    p.add_argument("--num-val", type=int, default=200)
    p.add_argument("--num-test", type=int, default=500)
    p.add_argument("--canvas-min", type=int, default=160, help="smallest canvas side (>= 128, the largest object)")
    p.add_argument("--canvas-max", type=int, default=256)
    p.add_argument("--max-objects", type=int, default=4, help="1..N objects per canvas")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    args = p.parse_args(argv)
    if not args.cifar_zip and not args.cifar_dir:
        p.error("give at least one --cifar-zip or --cifar-dir")
    if args.max_objects < 1 or min(args.num_train, args.num_val, args.num_test) < 0:
        p.error("--max-objects must be >= 1 and the image counts >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        counts = build(args)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: " + ", ".join(f"{s} {n}" for s, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
