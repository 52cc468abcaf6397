#!/usr/bin/env python
"""Run every evaluation protocol for several backbones and print one comparison table.

Each ``--row NAME=WEIGHTS`` is evaluated with ``tools/benchmark.py``'s code (kNN, linear in
faithful and fast mode, semi-supervised 1% and 10%); the markdown table goes to stdout and
to ``<output-dir>/table.md``, each run's ``results.json`` to ``<output-dir>/<NAME>/<task>/``.

Example (the README's CIFAR-10 evaluation table):
    python tools/benchmark_table.py --config-file configs/byol/cifar10_r10.yaml \\
        --row BYOL=output/byol_cifar10_r10/model_final.pth --row "random init=random" \\
        --row supervised=output/supervised_cifar10_r10/model_final.pth BENCHMARK.SEMI.EPOCHS "(30,)"
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchmark as bench  # noqa: E402  (tools/benchmark.py)

TASKS = ("knn", "linear", "semi")


def run_row(name: str, weights: str, args) -> dict:
    """Every task for one backbone: ``{column: value}``."""
    out = {}
    for task in args.tasks.split(","):
        argv = ["--task", task, "--config-file", args.config_file, "--weights", weights,
                "--output-dir", os.path.join(args.output_dir, name.replace(" ", "_"), task)]
        if task == "linear":
            argv += ["--mode", "both"]
        rows = bench.main(bench.parse_args(argv + list(args.opts)))
        for r in rows:
            key = f"{r['task']} {r['mode']}"
            out[key] = r
    return out


def fmt(r: dict) -> str:
    if r is None:
        return "—"
    text = f"{r['top1']:.1f}"
    if "speedup_vs_faithful" in r:
        text += f" ({r['speedup_vs_faithful']:.1f}x faster, {r['top1_minus_faithful']:+.1f})"
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--row", action="append", required=True, metavar="NAME=WEIGHTS")
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--output-dir", default="./output/benchmark_table")
    p.add_argument("opts", nargs=argparse.REMAINDER, default=[])
    args = p.parse_args()
    results, t0 = {}, time.perf_counter()
    for spec in args.row:
        name, _, weights = spec.partition("=")
        results[name] = run_row(name, weights, args)
    columns = [c for c in ("knn k=200", "knn k=20", "linear faithful", "linear fast", "semi 1%", "semi 10%")
               if any(c in r for r in results.values())]
    lines = ["| backbone | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for name, res in results.items():
        lines.append(f"| {name} | " + " | ".join(fmt(res.get(c)) for c in columns) + " |")
    table = "\n".join(lines)
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "table.md"), "w") as f:
        f.write(table + "\n")
    print("\nTop-1 accuracy (%) on the test split; hyper-parameters chosen on the held-out validation split.")
    print(table)
    print(f"total {time.perf_counter() - t0:.0f} s; table written to {os.path.join(args.output_dir, 'table.md')}")


if __name__ == "__main__":
    main()
