"""The benchmark tasks of ``tools/benchmark.py --task NAME``: ``TASK_REGISTRY`` maps a name to
``run(cfg, args) -> List[Dict]`` (result rows; ``args`` is the parsed command line).

Rows are printed as a table, written to ``OUTPUT_DIR/results.json`` and appended to
``BENCHMARK.RESULTS_CSV`` by the command line. A row's ``weights`` / ``train`` / ``test``
keys name what was evaluated. Adding a task = one module with its ``run_*`` function and one
registration line here.
"""
from __future__ import annotations

from typing import Dict, List

from ssl_zoo.benchmark.eval_setup import EvalSetup, build_eval_setup
from ssl_zoo.benchmark.finetune import run_semi, semi_config, semi_subset
from ssl_zoo.benchmark.knn import run_knn
from ssl_zoo.benchmark.linear import linear_config, run_linear
from ssl_zoo.utils.registry import Registry

__all__ = ["TASK_REGISTRY"]

TASK_REGISTRY = Registry("BENCHMARK_TASK")
TASK_REGISTRY.__doc__ = "Benchmark tasks: ``run(cfg, args) -> List[Dict]`` result rows."


def _describe(setup: EvalSetup, rows: List[Dict]) -> List[Dict]:
    for r in rows:
        r.update(weights=setup.weights_description, train=setup.dataset_names[0], test=setup.dataset_names[1],
                 val_images=int(len(setup.val_idx)))
    return rows


@TASK_REGISTRY.register(name="knn")
def knn_task(cfg, args) -> List[Dict]:
    """Weighted cosine kNN (k = ``TEST.KNN_K``, T = ``TEST.KNN_TEMPERATURE``)."""
    setup = build_eval_setup(cfg, args.weights, args.dataset)
    return _describe(setup, run_knn(setup, ks=tuple(cfg.TEST.KNN_K), temperature=cfg.TEST.KNN_TEMPERATURE))


@TASK_REGISTRY.register(name="linear")
def linear_task(cfg, args) -> List[Dict]:
    """Linear probe, faithful / fast / both (``BENCHMARK.LINEAR.MODE``, ``--mode``)."""
    setup = build_eval_setup(cfg, args.weights, args.dataset)
    return _describe(setup, run_linear(setup, linear_config(cfg), cfg.BENCHMARK.LINEAR.MODE))


@TASK_REGISTRY.register(name="semi")
def semi_task(cfg, args) -> List[Dict]:
    """Semi-supervised fine-tuning on 1% and / or 10% of the labels (``--fraction``)."""
    setup = build_eval_setup(cfg, args.weights, args.dataset)
    rows = []
    for pct in [args.fraction] if args.fraction else [1, 10]:
        subset, semi_setup = semi_subset(cfg, setup, pct)  # a list is used whole; validation drawn around it
        rows.append(run_semi(semi_setup, subset, f"{pct}%", semi_config(cfg)))
    return _describe(setup, rows)
