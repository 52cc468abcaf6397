"""``ssl-zoo-train`` (= ``tools/train_net.py``): self-supervised pretraining with any registered method.

Examples:
    ssl-zoo-train --config-file byol/quickstart.yaml             # a packaged config (configs/)
    ssl-zoo-train --config-file byol/quickstart.yaml DATASETS.TRAIN /path/to/my/images \\
        OUTPUT_DIR out/mine                                        # your own unlabeled images
    ssl-zoo-train --config-file configs/byol/r50_1000ep.yaml --num-gpus 8
    ssl-zoo-train --config-file configs/byol/r50_1000ep.yaml --num-gpus 8 \\
        --num-machines 4 --machine-rank 0 --dist-url tcp://host0:29500
    torchrun --nproc_per_node 8 tools/train_net.py --config-file configs/byol/r50_1000ep.yaml
    ssl-zoo-train --config-file byol/r50_1000ep.yaml --print-config
    ssl-zoo-train --config-file byol/r50_1000ep.yaml OUTPUT_DIR out/r50 --resume   # flags anywhere
    ssl-zoo-train --config-file ... --overwrite      # replace the run in OUTPUT_DIR
    ssl-zoo-train --config-file ... --debug          # errors with their traceback

``--config-file`` is a path, or the name of a packaged config (``byol/quickstart.yaml``).
KEY VALUE overrides and flags may come in any order. OUTPUT_DIR is locked while a run trains
in it; a fresh start over an earlier run's checkpoints needs --resume or --overwrite.
SIGTERM / SIGINT save a checkpoint at the next step boundary and exit with status
128 + signal; --resume continues exactly. Errors print one `error:` line.
"""
from __future__ import annotations

import argparse
from typing import List, Optional

from ssl_zoo.config import load_config
from ssl_zoo.engine.defaults import build_trainer, default_argument_parser, default_setup, launch_cli
from ssl_zoo.utils.resources import resolve_config_file

__all__ = ["main", "parse_args", "run", "setup"]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The command line; flags and KEY VALUE overrides in any order."""
    args = default_argument_parser(epilog=None, description=__doc__).parse_intermixed_args(argv)
    args.config_file = resolve_config_file(args.config_file)
    return args


def setup(args: argparse.Namespace):
    """Defaults (+ every registered method's keys) <- YAML file (with _BASE_) <- KEY VALUE overrides."""
    cfg = load_config(args.config_file, args.opts)
    cfg.freeze()
    return cfg


def run(args: argparse.Namespace):
    """What every training process runs: set up OUTPUT_DIR, build the trainer, train."""
    cfg = setup(args)
    default_setup(cfg, args)
    trainer = build_trainer(cfg, resume=args.resume)
    return trainer.train()


def main(argv: Optional[List[str]] = None) -> None:
    """Console-script entry point."""
    launch_cli(run, parse_args(argv), setup)


if __name__ == "__main__":
    main()
