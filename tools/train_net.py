#!/usr/bin/env python
"""Self-supervised pretraining with any registered method (detectron2-style entry point).

Examples:
    python tools/train_net.py --config-file configs/byol/quickstart.yaml
    python tools/train_net.py --config-file configs/byol/r50_1000ep.yaml --num-gpus 8
    python tools/train_net.py --config-file configs/byol/r50_1000ep.yaml --num-gpus 8 \\
        --num-machines 4 --machine-rank 0 --dist-url tcp://host0:29500
    torchrun --nproc_per_node 8 tools/train_net.py --config-file configs/byol/r50_1000ep.yaml
    python tools/train_net.py --config-file configs/byol/r50_1000ep.yaml --print-config
    python tools/train_net.py --config-file ... --resume SOLVER.IMS_PER_BATCH 1024
    python tools/train_net.py --config-file ... --overwrite      # replace the run in OUTPUT_DIR
    python tools/train_net.py --config-file ... --debug          # errors with their traceback

OUTPUT_DIR is locked while a run trains in it; a fresh start over an earlier run's checkpoints
needs --resume or --overwrite. SIGTERM / SIGINT save a checkpoint at the next step boundary
and exit with status 128 + signal; --resume continues exactly. Errors print one `error:` line.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from _paths import import_methods  # noqa: E402

from ssl_zoo.config import load_config  # noqa: E402
from ssl_zoo.engine.defaults import build_trainer, default_argument_parser, default_setup, launch_cli  # noqa: E402


def setup(args):
    """Defaults (+ every registered method's keys) <- YAML file (with _BASE_) <- KEY VALUE overrides."""
    import_methods()
    cfg = load_config(args.config_file, args.opts)
    cfg.freeze()
    return cfg


def main(args):
    cfg = setup(args)
    default_setup(cfg, args)
    trainer = build_trainer(cfg, resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    launch_cli(main, default_argument_parser().parse_args(), setup)
