"""The benchmark tasks of ``tools/benchmark.py --task NAME``: ``TASK_REGISTRY`` maps a name to a
:class:`BenchmarkTask`: ``run(cfg, args) -> List[Dict]`` (result rows; ``args`` is the parsed
command line) and optionally ``report(rows) -> str``, the task's own table (e.g. transfer's
Table-3 shape); without one the command line prints the rows' scalar columns.

Rows are printed, written to ``OUTPUT_DIR/results.json`` and appended to
``BENCHMARK.RESULTS_CSV`` by the command line (rows with ``status == "missing"`` are only
printed). A row's ``weights`` / ``train`` / ``test`` keys name what was evaluated. Adding a task
= one module with its ``run_*`` function and one registration line here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from ssl_zoo.benchmark.depth.run import run_depth
from ssl_zoo.benchmark.detection.train import run_detection
from ssl_zoo.benchmark.eval_setup import EvalSetup, build_eval_setup
from ssl_zoo.benchmark.finetune import run_semi, semi_config, semi_subset
from ssl_zoo.benchmark.knn import run_knn
from ssl_zoo.benchmark.linear import linear_config, run_linear
from ssl_zoo.benchmark.segmentation.run import run_segmentation
from ssl_zoo.benchmark.transfer.report import transfer_table
from ssl_zoo.benchmark.transfer.task import run_transfer
from ssl_zoo.utils.registry import Registry

__all__ = ["TASK_REGISTRY", "BenchmarkTask"]

TASK_REGISTRY = Registry("BENCHMARK_TASK")
TASK_REGISTRY.__doc__ = "Benchmark tasks (BenchmarkTask): run(cfg, args) -> result rows, optional report(rows)."


@dataclass(frozen=True)
class BenchmarkTask:
    """One ``--task``: how to run it and, optionally, how to print its rows."""

    run: Callable[..., List[Dict]]
    report: Optional[Callable[[List[Dict]], str]] = None


def register_task(name: str, run: Callable[..., List[Dict]], report: Optional[Callable] = None) -> None:
    TASK_REGISTRY.register(BenchmarkTask(run, report), name=name)


def _describe(setup: EvalSetup, rows: List[Dict]) -> List[Dict]:
    for r in rows:
        r.update(weights=setup.weights_description, train=setup.dataset_names[0], test=setup.dataset_names[1],
                 val_images=int(len(setup.val_idx)))
    return rows


def knn_task(cfg, args) -> List[Dict]:
    """Weighted cosine kNN (k = ``TEST.KNN_K``, T = ``TEST.KNN_TEMPERATURE``)."""
    setup = build_eval_setup(cfg, args.weights, args.dataset)
    return _describe(setup, run_knn(setup, ks=tuple(cfg.TEST.KNN_K), temperature=cfg.TEST.KNN_TEMPERATURE))


def linear_task(cfg, args) -> List[Dict]:
    """Linear probe, faithful / fast / both (``BENCHMARK.LINEAR.MODE``, ``--mode``)."""
    setup = build_eval_setup(cfg, args.weights, args.dataset)
    return _describe(setup, run_linear(setup, linear_config(cfg), cfg.BENCHMARK.LINEAR.MODE))


def semi_task(cfg, args) -> List[Dict]:
    """Semi-supervised fine-tuning on 1% and / or 10% of the labels (``--fraction``)."""
    setup = build_eval_setup(cfg, args.weights, args.dataset)
    rows = []
    for pct in [args.fraction] if args.fraction else [1, 10]:
        subset, semi_setup = semi_subset(cfg, setup, pct)  # a list is used whole; validation drawn around it
        rows.append(run_semi(semi_setup, subset, f"{pct}%", semi_config(cfg)))
    return _describe(setup, rows)


register_task("knn", knn_task)
register_task("linear", linear_task)
register_task("semi", semi_task)
# Transfer to the 12 classification datasets (PROTOCOLS.md s.5): L-BFGS linear and fine-tuning.
register_task("transfer", run_transfer, report=transfer_table)
# Dense transfer (PROTOCOLS.md s.6): their own data, models and fine-tuning.
register_task("segmentation", run_segmentation)  # VOC2012 FCN, mIoU
register_task("depth", run_depth)  # NYU v2 FCRN, delta / rms / rel
register_task("detection", run_detection)  # VOC Faster R-CNN R50-C4 (MoCo's protocol), AP50 / AP / AP75
