"""``ssl-zoo-embed``: the backbone's features for every image of a folder, as safetensors / npy + csv.

Examples:
    # the backbone you pretrained (its run's config.yaml is found next to the checkpoint)
    ssl-zoo-embed /path/to/images --weights out/mine/model_final.pth --output out/mine/embeddings.safetensors
    # a model-zoo backbone: architecture, input size and mean / std come from the catalog
    ssl-zoo-embed /path/to/images --weights byol_r50_1x_1000ep --output emb.npy
    # any --weights spec of ssl-zoo-benchmark, with a config for the backbone and input
    ssl-zoo-embed /path/to/images --weights torchvision:resnet50 --config-file byol/r50_1000ep.yaml \\
        --output emb.safetensors TEST.IMS_PER_BATCH 128 DEVICE cuda

Writes ``--output`` (``.safetensors``: tensor ``embeddings`` [N, D] float32; ``.npy``: the array)
and a CSV of the same name (``index,path``, paths relative to the folder) in the same row order.
Unreadable images are skipped and counted. The folder is read recursively, without labels.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from typing import List, Optional

from ssl_zoo.benchmark.embed import embed_folder, write_embeddings
from ssl_zoo.benchmark.splits import eval_resize
from ssl_zoo.config import load_config
from ssl_zoo.engine.defaults import USER_ERRORS, error_line
from ssl_zoo.model_zoo import get as zoo_get, get_entry, list_models
from ssl_zoo.model_zoo.weights import load_backbone_weights
from ssl_zoo.modeling.backbones.build import build_backbone_from_cfg
from ssl_zoo.utils.env import device_from_cfg
from ssl_zoo.utils.resources import resolve_config_file

__all__ = ["main", "parse_args"]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ssl-zoo-embed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", help="folder of images (flat or nested) or a file list")
    p.add_argument("--weights", required=True, help="checkpoint file, zoo name, torchvision:/timm: name, or 'random'")
    p.add_argument("--config-file", default="", metavar="FILE",
                   help="backbone + input config (default: config.yaml beside a checkpoint file; a zoo name needs none)")
    p.add_argument("--output", default="embeddings.safetensors", help=".safetensors or .npy (+ .csv beside it)")
    p.add_argument("--corrupt-policy", default="skip", choices=("skip", "fail"))
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    p.add_argument("opts", default=[], nargs="*", metavar="KEY VALUE", help="config overrides (any position)")
    return p.parse_intermixed_args(argv)


def _config_file(args) -> str:
    if args.config_file:
        return resolve_config_file(args.config_file)
    beside = os.path.join(os.path.dirname(os.path.abspath(args.weights)), "config.yaml")
    if os.path.isfile(args.weights) and os.path.isfile(beside):
        return beside
    raise ValueError(f"--weights '{args.weights}' is not a model-zoo name and has no config.yaml beside it: "
                     f"give --config-file (the config that built the backbone)")


def run(args) -> List[str]:
    """Build the backbone, embed the folder, write the files; returns the written paths."""
    if not (os.path.isfile(args.folder) or os.path.isdir(args.folder)):
        raise FileNotFoundError(f"no such folder or file list: {os.path.abspath(args.folder)}")
    zoo = not args.config_file and not os.path.isfile(args.weights) and args.weights in list_models()
    cfg = load_config("" if zoo else _config_file(args), args.opts)
    if zoo:  # the catalog says how the checkpoint runs
        entry = get_entry(args.weights)
        backbone = zoo_get(args.weights, progress=not args.no_progress)
        size, mean, std = entry.input_size, entry.mean, entry.std
    else:
        backbone = build_backbone_from_cfg(cfg)
        logging.getLogger(__name__).info(f"weights: {load_backbone_weights(backbone, args.weights)}")
        size, mean, std = cfg.INPUT.IMAGE_SIZE, cfg.INPUT.MEAN, cfg.INPUT.STD
    resize = eval_resize(size, cfg.BENCHMARK.CROP_FRACTION)  # as the benchmark: 256 -> 224, 37 -> 32
    result = embed_folder(backbone, args.folder, image_size=size, resize=resize, mean=list(mean), std=list(std),
                          device=device_from_cfg(cfg), batch_size=cfg.TEST.IMS_PER_BATCH,
                          num_workers=cfg.DATALOADER.NUM_WORKERS, corrupt_policy=args.corrupt_policy,
                          progress=not args.no_progress)
    written = write_embeddings(result, args.output, args.folder)
    print(f"embedded {len(result.paths)} images ({len(result.skipped)} skipped as unreadable) -> "
          f"{tuple(result.embeddings.shape)} float32: {', '.join(written)}")
    return written


def main(argv: Optional[List[str]] = None) -> None:
    """Console-script entry point: errors end with one ``error:`` line (``--debug``: traceback)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        run(args)
    except USER_ERRORS + (RuntimeError,) as e:
        if args.debug:
            traceback.print_exc()
        sys.exit(error_line(e))


if __name__ == "__main__":
    main()
