"""``ssl-zoo-benchmark`` (= ``tools/benchmark.py``): evaluate a backbone: kNN, linear (faithful / fast),
semi-supervised (PROTOCOLS.md s.3-4), transfer to 12 datasets (s.5), detection, segmentation and
depth (s.6): any task of ``TASK_REGISTRY``.

Examples:
    ssl-zoo-benchmark --task knn --config-file byol/cifar10_r10.yaml \\
        --weights output/byol_cifar10_r10/model_final.pth
    ssl-zoo-benchmark --task linear --mode both --config-file byol/cifar10_r10.yaml \\
        --weights output/byol_cifar10_r10/model_final.pth
    ssl-zoo-benchmark --task semi --fraction 10 --config-file byol/r50_1000ep.yaml \\
        --weights byol_r50_1x_1000ep --num-gpus 8
    ssl-zoo-benchmark --task linear --config-file byol/r50_1000ep.yaml BENCHMARK.LINEAR.EPOCHS 90 \\
        --weights torchvision:resnet50 --dataset imagenet          # flags and overrides in any order
    ssl-zoo-benchmark --task transfer --dataset cifar10 --mode both --budget small \
        --config-file byol/cifar10_r10.yaml --weights output/byol_cifar10_r10/model_final.pth
    ssl-zoo-benchmark --task detection --dataset voc0712 --config-file byol/r50_1000ep.yaml \
        --weights byol_r50_1x_1000ep --num-gpus 8                  # MoCo's VOC protocol, Faster R-CNN R50-C4
    ssl-zoo-benchmark --task segmentation --dataset voc2012_aug --config-file byol/r50_1000ep.yaml \
        --weights byol_r50_1x_1000ep                               # FCN, BYOL App. D.4

``--config-file`` (a path or a packaged config name) gives the backbone (MODEL.BACKBONE.*),
input size and normalisation (INPUT.*), precision (SOLVER.AMP.*) and by default the dataset
(DATASETS.KNN_TRAIN / KNN_TEST); ``BENCHMARK.*`` keys hold the protocols' hyper-parameters
(``--print-config`` shows them). ``--weights``: a train_net checkpoint, any state dict
(prefixes such as ``module.``, ``backbone.``, ``module.encoder_q.`` are found), a model-zoo
name, ``torchvision:<name>``, ``timm:<name>`` or ``random``. Results: a table on stdout,
``OUTPUT_DIR/results.json`` and rows appended to ``BENCHMARK.RESULTS_CSV``.
"""
from __future__ import annotations

import argparse
import os
from typing import List, Optional

import torch
from tabulate import tabulate

from ssl_zoo.benchmark.results import write_results
from ssl_zoo.benchmark.tasks import TASK_REGISTRY
from ssl_zoo.config import load_config
from ssl_zoo.engine.defaults import default_setup, launch_cli
from ssl_zoo.utils import comm
from ssl_zoo.utils.resources import resolve_config_file

__all__ = ["main", "parse_args", "run", "setup_cfg"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, choices=TASK_REGISTRY.names())
    p.add_argument("--config-file", required=True, metavar="FILE", help="the pretraining config (backbone, input)")
    p.add_argument("--weights", required=True, help="checkpoint file, zoo name, torchvision:/timm: name, or 'random'")
    p.add_argument("--fraction", type=int, default=None, help="semi: percent of labelled images (1 or 10); "
                   "default both")
    p.add_argument("--mode", default=None, choices=("faithful", "fast", "both", "linear", "finetune"),
                   help="linear: faithful | fast | both (overrides BENCHMARK.LINEAR.MODE); "
                        "transfer: linear | finetune | both")
    p.add_argument("--dataset", default="", help="evaluate on NAME_train / NAME_test (e.g. cifar10, imagenet); "
                   "transfer: a dataset name, 'all' or an ImageFolder with train/ and test/; detection: voc07 | "
                   "voc0712; segmentation: voc2012_aug or a VOC-layout folder; depth: nyuv2 or a folder")
    p.add_argument("--budget", default="full", choices=("full", "small"),
                   help="transfer: 'small' = a reduced fine-tuning grid and step count (the output says so)")
    p.add_argument("--resume", action="store_true", help="detection: continue from OUTPUT_DIR/last_checkpoint")
    p.add_argument("--output-dir", default="", help="default: <OUTPUT_DIR of the config>/eval/<task>[_<mode>]")
    p.add_argument("--print-config", action="store_true", help="print the merged config and exit")
    p.add_argument("--num-gpus", type=int, default=1, help="processes per machine")
    p.add_argument("--num-machines", type=int, default=1)
    p.add_argument("--machine-rank", type=int, default=0)
    p.add_argument("--dist-url", default="auto")
    p.add_argument("--dist-timeout", type=float, default=600.0, help="collective timeout in seconds")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    p.add_argument("opts", default=[], nargs="*", metavar="KEY VALUE",
                   help="config overrides: KEY VALUE pairs (flags may come before or after them)")
    args = p.parse_intermixed_args(argv)
    args.config_file = resolve_config_file(args.config_file)
    return args


def setup_cfg(args):
    """The merged config of the evaluation (OUTPUT_DIR: ``<OUTPUT_DIR>/eval/<task>`` unless --output-dir)."""
    cfg = load_config(args.config_file, args.opts)
    if args.mode and args.task == "linear":
        cfg.BENCHMARK.LINEAR.MODE = args.mode
    suffix = {"linear": f"_{cfg.BENCHMARK.LINEAR.MODE}", "semi": f"_{args.fraction}pct" if args.fraction else "",
              "transfer": f"_{args.mode or 'linear'}"}
    cfg.OUTPUT_DIR = args.output_dir or os.path.join(cfg.OUTPUT_DIR, "eval", args.task + suffix.get(args.task, ""))
    cfg.freeze()
    return cfg


def run(args):
    """What every evaluation process runs: the task, then results on disk and a table on stdout."""
    cfg = setup_cfg(args)
    default_setup(cfg, args)
    task = TASK_REGISTRY.get(args.task)
    rows = task.run(cfg, args)
    meta = {"task": args.task, "weights": args.weights, "config_file": args.config_file,
            "backbone": f"{cfg.MODEL.BACKBONE.NAME} w{cfg.MODEL.BACKBONE.WIDTH} bw{cfg.MODEL.BACKBONE.BASE_WIDTH}",
            "world_size": comm.get_world_size(), "torch": torch.__version__}
    write_results([r for r in rows if r.get("status") != "missing"], cfg.OUTPUT_DIR, cfg.BENCHMARK.RESULTS_CSV, meta)
    if comm.is_main_process():
        if task.report is not None:
            print(f"\nweights: {args.weights}\n" + task.report(rows))
        else:
            print_rows(rows)
        print(f"results: {os.path.join(cfg.OUTPUT_DIR, 'results.json')}"
              + (f", appended to {cfg.BENCHMARK.RESULTS_CSV}" if cfg.BENCHMARK.RESULTS_CSV else ""))
    return rows


def print_rows(rows) -> None:
    """What was evaluated, then one table row per result (the scalar columns every task shares first)."""
    first = rows[0] if rows else {}
    if "weights" in first:
        print(f"\nweights: {first['weights']}")
    if "train" in first:
        val = f" (validation: {first['val_images']} images held out from train)" if "val_images" in first else ""
        print(f"data: {first['train']} -> {first.get('test', '')}{val}")
    if rows and "protocol" in rows[-1]:  # the schedule the rows ran (the paper's, or a named budget)
        print(f"schedule: {rows[-1]['protocol']}")
    cols = [c for c in PREFERRED_COLUMNS if any(c in r for r in rows)]
    cols += [c for r in rows for c in r if c not in cols and c not in DESCRIPTIVE and not isinstance(r[c], (dict, list))]
    cols = list(dict.fromkeys(cols))
    print(tabulate([[r.get(c, "") for c in cols] for r in rows], headers=cols, floatfmt=".2f", tablefmt="github"))


PREFERRED_COLUMNS = ("task", "mode", "top1", "top5", "best_lr", "best_epochs", "speedup_vs_faithful",
                     "top1_minus_faithful", "seconds")
DESCRIPTIVE = ("weights", "train", "test", "val_images", "protocol")


def main(argv: Optional[List[str]] = None) -> None:
    """Console-script entry point: a bad --weights / dataset / key ends with its message, no traceback."""
    launch_cli(run, parse_args(argv), setup_cfg, user_errors=(FileNotFoundError, ValueError, KeyError))


if __name__ == "__main__":
    main()
