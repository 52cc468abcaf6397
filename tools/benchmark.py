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

TASKS = ("knn", "linear", "semi", "transfer")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--config-file", required=True, metavar="FILE", help="the pretraining config (backbone, input)")
    p.add_argument("--weights", required=True, help="checkpoint file, zoo name, torchvision:/timm: name, or 'random'")
    p.add_argument("--fraction", type=int, default=None, help="semi: percent of labelled images (1 or 10); "
                   "default both")
    p.add_argument("--mode", default=None, choices=("faithful", "fast", "both", "linear", "finetune"),
                   help="linear: faithful / fast / both (overrides BENCHMARK.LINEAR.MODE); transfer: linear / "
                   "finetune / both")
    p.add_argument("--dataset", default="", help="evaluate on NAME_train / NAME_test (e.g. cifar10, imagenet); "
                   "transfer: one of the 12 datasets, 'all', or an ImageFolder path with train/ and test/")
    p.add_argument("--budget", default="full", choices=("full", "small"),
                   help="transfer fine-tuning: 'small' = reduced grid and steps (a quick look, labelled as such)")
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
    if args.mode and args.task == "linear":
        cfg.BENCHMARK.LINEAR.MODE = args.mode
    suffix = {"linear": f"_{cfg.BENCHMARK.LINEAR.MODE}", "semi": f"_{args.fraction}pct" if args.fraction else "",
              "transfer": f"_{args.mode or 'linear'}"}
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
    if args.task == "transfer":
        return _transfer(cfg, args)
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


def _transfer(cfg, args):
    """--task transfer (PROTOCOLS.md s.5): the Table-3-shaped report, results.json and CSV rows."""
    import torch

    from ssl_zoo.benchmark.transfer.report import transfer_table
    from ssl_zoo.benchmark.transfer.task import run_transfer
    from ssl_zoo.evaluation.benchmark import write_results

    rows = run_transfer(cfg, args)
    meta = {"weights": args.weights, "backbone": f"{cfg.MODEL.BACKBONE.NAME} w{cfg.MODEL.BACKBONE.WIDTH}",
            "config_file": args.config_file, "torch": torch.__version__, "budget": args.budget}
    write_results([r for r in rows if r.get("status") != "missing"], cfg.OUTPUT_DIR, cfg.BENCHMARK.RESULTS_CSV, meta)
    print(f"\nweights: {args.weights}\n" + transfer_table(rows))
    print(f"results: {os.path.join(cfg.OUTPUT_DIR, 'results.json')}")
    return rows


if __name__ == "__main__":
    # a bad --weights / dataset / key ends with its message, no traceback
    launch_cli(main, parse_args(), setup_cfg, user_errors=(FileNotFoundError, ValueError, KeyError))
