#!/usr/bin/env python
"""Evaluate a backbone: kNN, linear (faithful / fast) or semi-supervised (PROTOCOLS.md s.3-4).

Examples:
    python tools/benchmark.py --task knn --config-file configs/byol/cifar10_r10.yaml \\
        --weights output/byol_cifar10_r10/model_final.pth
    python tools/benchmark.py --task linear --mode both --config-file configs/byol/cifar10_r10.yaml \\
        --weights output/byol_cifar10_r10/model_final.pth
    python tools/benchmark.py --task semi --fraction 10 --config-file configs/byol/r50_1000ep.yaml \\
        --weights byol_r50_1x_1000ep --num-gpus 8
    python tools/benchmark.py --task linear --config-file configs/byol/r50_1000ep.yaml \\
        --weights torchvision:resnet50 --dataset imagenet BENCHMARK.LINEAR.EPOCHS 90
    python tools/benchmark.py --task detection --dataset voc0712 --config-file configs/byol/r50_1000ep.yaml \\
        --weights byol_r50_1x_1000ep --num-gpus 8         # MoCo's VOC protocol, Faster R-CNN R50-C4

``--config-file`` gives the backbone (MODEL.BACKBONE.*), input size and normalisation
(INPUT.*), precision (SOLVER.AMP.*) and by default the dataset (DATASETS.KNN_TRAIN / KNN_TEST);
``BENCHMARK.*`` keys hold the protocols' hyper-parameters (``--print-config`` shows them).
``--weights``: a train_net checkpoint, any state dict (prefixes such as ``module.``,
``backbone.``, ``module.encoder_q.`` are found), a model-zoo name, ``torchvision:<name>``,
``timm:<name>`` or ``random``. Results: a table on stdout, ``OUTPUT_DIR/results.json``
and rows appended to ``BENCHMARK.RESULTS_CSV``.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from _paths import import_methods  # noqa: E402

from ssl_zoo.config import load_config  # noqa: E402
from ssl_zoo.engine.defaults import launch_cli  # noqa: E402

TASKS = ("knn", "linear", "semi", "detection")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--config-file", required=True, metavar="FILE", help="the pretraining config (backbone, input)")
    p.add_argument("--weights", required=True, help="checkpoint file, zoo name, torchvision:/timm: name, or 'random'")
    p.add_argument("--fraction", type=int, default=None, help="semi: percent of labelled images (1 or 10); "
                   "default both")
    p.add_argument("--mode", default=None, choices=("faithful", "fast", "both"),
                   help="linear: overrides BENCHMARK.LINEAR.MODE")
    p.add_argument("--dataset", default="", help="evaluate on NAME_train / NAME_test (e.g. cifar10, imagenet)")
    p.add_argument("--resume", action="store_true", help="detection: continue from OUTPUT_DIR/last_checkpoint")
    p.add_argument("--output-dir", default="", help="default: <OUTPUT_DIR of the config>/eval/<task>[_<mode>]")
    p.add_argument("--print-config", action="store_true", help="print the merged config and exit")
    p.add_argument("--num-gpus", type=int, default=1, help="processes per machine")
    p.add_argument("--num-machines", type=int, default=1)
    p.add_argument("--machine-rank", type=int, default=0)
    p.add_argument("--dist-url", default="auto")
    p.add_argument("opts", default=[], nargs=argparse.REMAINDER, help="config overrides: KEY VALUE pairs")
    return p.parse_args(argv)


def setup_cfg(args):
    import_methods()
    cfg = load_config(args.config_file, args.opts)
    if args.mode:
        cfg.BENCHMARK.LINEAR.MODE = args.mode
    suffix = {"linear": f"_{cfg.BENCHMARK.LINEAR.MODE}", "semi": f"_{args.fraction}pct" if args.fraction else ""}
    cfg.OUTPUT_DIR = args.output_dir or os.path.join(cfg.OUTPUT_DIR, "eval", args.task + suffix.get(args.task, ""))
    cfg.freeze()
    return cfg


def main(args):
    import torch
    from tabulate import tabulate

    from ssl_zoo.engine.defaults import default_setup
    from ssl_zoo.evaluation import benchmark as B
    from ssl_zoo.evaluation import protocols as P
    from ssl_zoo.utils import comm

    cfg = setup_cfg(args)
    default_setup(cfg, args)
    if args.task == "detection":
        return run_detection_cli(cfg, args)
    setup = B.build_eval_setup(cfg, args.weights, args.dataset)
    if args.task == "knn":
        rows = P.run_knn(setup, ks=tuple(cfg.TEST.KNN_K), temperature=cfg.TEST.KNN_TEMPERATURE)
    elif args.task == "linear":
        rows = P.run_linear(setup, B.linear_config(cfg), cfg.BENCHMARK.LINEAR.MODE)
    else:
        rows = [P.run_semi(setup, B.semi_subset(cfg, setup, pct), f"{pct}%", B.semi_config(cfg))
                for pct in ([args.fraction] if args.fraction else [1, 10])]
    meta = {"weights": setup.weights_description, "train": setup.dataset_names[0], "test": setup.dataset_names[1],
            "backbone": f"{cfg.MODEL.BACKBONE.NAME} w{cfg.MODEL.BACKBONE.WIDTH} bw{cfg.MODEL.BACKBONE.BASE_WIDTH}",
            "config_file": args.config_file, "world_size": comm.get_world_size(), "torch": torch.__version__}
    B.write_results(rows, cfg.OUTPUT_DIR, cfg.BENCHMARK.RESULTS_CSV, meta)
    if comm.is_main_process():
        cols = ("task", "mode", "top1", "top5", "best_lr", "best_epochs", "speedup_vs_faithful", "top1_minus_faithful",
                "seconds")
        shown = [c for c in cols if any(c in r for r in rows)]
        table = [[r.get(c, "") for c in shown] for r in rows]
        print(f"\nweights: {setup.weights_description}\ndata: {setup.dataset_names[0]} -> {setup.dataset_names[1]} "
              f"(validation: {len(setup.val_idx)} images held out from train)")
        print(tabulate(table, headers=shown, floatfmt=".2f", tablefmt="github"))
        print(f"results: {os.path.join(cfg.OUTPUT_DIR, 'results.json')}"
              + (f", appended to {cfg.BENCHMARK.RESULTS_CSV}" if cfg.BENCHMARK.RESULTS_CSV else ""))
    return rows


def run_detection_cli(cfg, args):
    """``--task detection`` (PROTOCOLS.md s.6): train + test the C4 detector, write the results."""
    from tabulate import tabulate

    from ssl_zoo.benchmark.detection.train import run_detection
    from ssl_zoo.evaluation import benchmark as B
    from ssl_zoo.utils import comm

    rows = run_detection(cfg, args)
    if comm.is_main_process():
        meta = {"weights": rows[0]["weights"], "train": rows[0]["dataset"], "test": "VOC2007 test",
                "backbone": f"{cfg.MODEL.BACKBONE.NAME} w{cfg.MODEL.BACKBONE.WIDTH} bw{cfg.MODEL.BACKBONE.BASE_WIDTH}",
                "config_file": args.config_file, "world_size": comm.get_world_size()}
        B.write_results(rows, cfg.OUTPUT_DIR, cfg.BENCHMARK.RESULTS_CSV, meta)
        cols = ("dataset", "AP50", "AP", "AP75", "iterations", "train_its_per_s", "schedule")
        print(f"\nweights: {rows[0]['weights']}")
        print(tabulate([[r[c] for c in cols] for r in rows], headers=cols, floatfmt=".2f", tablefmt="github"))
        print(f"results: {os.path.join(cfg.OUTPUT_DIR, 'results.json')}")
    return rows


if __name__ == "__main__":
    # a bad --weights / dataset / key ends with its message, no traceback
    launch_cli(main, parse_args(), setup_cfg, user_errors=(FileNotFoundError, ValueError, KeyError))
