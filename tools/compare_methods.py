#!/usr/bin/env python
"""Train several configs at the same budget and write one markdown table of their results.

Each config is trained by ``tools/train_net.py`` in its own process (a failure or a leaked
global state in one run cannot affect the others), into ``<out-root>/<config name>/``. The
table is built from each run's ``summary.json`` (kNN top-1 of the trained backbone and at
random init) and the last collapse signals in its ``metrics.jsonl`` (``collapse_std`` of the
L2-normalised embeddings, healthy about 1/sqrt(d), collapsed near 0; ``effective_rank``).

Examples:
    # the README table: BYOL, SimCLR, MoCo v2, SimSiam, Barlow Twins and BYOL's target-network
    # ablations on the built-in CIFAR-10 subset, each at the BYOL quickstart's budget
    python tools/compare_methods.py
    # smoke test: 2 iterations per config, no kNN, one thread each
    python tools/compare_methods.py --max-iter 2 --no-knn --threads 1 --out-root /tmp/cmp
    # any configs, extra KEY VALUE overrides for every run (anywhere on the line, as in train_net.py)
    python tools/compare_methods.py SOLVER.EPOCHS 40 --configs configs/byol/quickstart.yaml \\
        configs/simclr/quickstart.yaml
    python tools/compare_methods.py --configs configs/byol/quickstart.yaml configs/simclr/quickstart.yaml \\
        SOLVER.EPOCHS 40          # overrides after --configs: the first KEY (A.B) ends the config list
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from typing import Dict, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run from a checkout

from ssl_zoo.engine.metrics_file import metrics_path, read_metrics  # noqa: E402
from ssl_zoo.utils.file_io import atomic_write  # noqa: E402

DEFAULT_CONFIGS = [
    "configs/byol/quickstart.yaml",
    "configs/simclr/quickstart.yaml",
    "configs/mocov2/quickstart.yaml",
    "configs/simsiam/quickstart.yaml",
    "configs/barlow_twins/quickstart.yaml",
    "configs/byol/ablations/quickstart_tau1.yaml",
    "configs/byol/ablations/quickstart_tau0.yaml",
    "configs/byol/ablations/quickstart_pred_lr0.1.yaml",
    "configs/byol/ablations/quickstart_tau0_pred_lr0.1.yaml",
    "configs/byol/ablations/quickstart_no_predictor.yaml",
    "configs/byol/ablations/quickstart_no_predictor_no_target.yaml",
    "configs/byol/ablations/quickstart_unified_beta1.yaml",
    # Table 5a's target variants again under the paper's optimiser (LARS): tau = 0 collapses (dimensionally)
    "configs/byol/ablations/quickstart_lars.yaml",
    "configs/byol/ablations/quickstart_lars_tau1.yaml",
    "configs/byol/ablations/quickstart_lars_tau0.yaml",
    "configs/byol/ablations/quickstart_lars_tau0_pred_lr10.yaml",  # Table 21's rescue of tau = 0 (300 ImageNet epochs)
]


_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+$")


def split_overrides(configs: List[str]) -> "tuple[List[str], List[str]]":
    """``--configs a.yaml b.yaml SOLVER.EPOCHS 40`` -> (configs, overrides): the first item that looks
    like a config key (``A.B``, upper case) and is not an existing file starts the overrides."""
    for i, item in enumerate(configs):
        if _KEY.match(item) and not os.path.exists(item):
            return configs[:i], configs[i:]
    return configs, []


def run_name(config: str) -> str:
    """``configs/byol/ablations/quickstart_tau0.yaml`` -> ``byol/ablations/quickstart_tau0``; a config
    outside ``configs/`` is named by its file name (its run must stay inside ``--out-root``)."""
    rel = os.path.relpath(os.path.abspath(config), os.path.join(REPO, "configs"))
    if rel.startswith(os.pardir + os.sep):
        rel = os.path.basename(config)
    return os.path.splitext(rel)[0]


def train(config: str, output_dir: str, opts: List[str], threads: Optional[int]) -> int:
    """Run ``tools/train_net.py`` on ``config``; returns its exit status (log in output_dir/compare_log.txt)."""
    os.makedirs(output_dir, exist_ok=True)
    cmd = [sys.executable, os.path.join(REPO, "tools", "train_net.py"), "--config-file", config,
           "OUTPUT_DIR", output_dir, "LOG.PROGRESS_BAR", "False", *opts]
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    with open(os.path.join(output_dir, "compare_log.txt"), "w") as log:
        return subprocess.call(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def last_metrics(output_dir: str, names=("collapse_std", "collapse_std_sqrt_d", "effective_rank")) -> Dict[str, float]:
    """Last logged value of each of ``names`` in the run's metrics file (``ssl_zoo.engine.metrics_file``)."""
    found: Dict[str, float] = {}
    if not os.path.isfile(metrics_path(output_dir)):
        return found
    for record in read_metrics(output_dir):
        found.update({k: record[k] for k in names if k in record})
    return found


def collect(name: str, output_dir: str, status: str) -> Dict[str, object]:
    """One table row from ``summary.json`` and ``metrics.jsonl``."""
    row: Dict[str, object] = {"config": name, "status": status}
    path = os.path.join(output_dir, "summary.json")
    summary = json.load(open(path)) if os.path.isfile(path) else {}
    row["iterations"] = summary.get("iterations")
    row["kNN top-1"] = summary.get("knn_top1")
    row["kNN top-1 (random init)"] = summary.get("knn_top1_random_init")
    row["final loss"] = summary.get("final_loss")
    metrics = last_metrics(output_dir)
    row["collapse std x sqrt(d)"] = metrics.get("collapse_std_sqrt_d")
    row["effective rank"] = metrics.get("effective_rank")
    row["wall time (s)"] = summary.get("wall_time_s")
    return row


def markdown_table(rows: List[Dict[str, object]]) -> str:
    from tabulate import tabulate

    def fmt(v):
        if isinstance(v, float):
            return "nan" if math.isnan(v) else f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
        return "-" if v is None else v

    headers = list(rows[0].keys())
    return tabulate([[fmt(r[h]) for h in headers] for r in rows], headers=headers, tablefmt="pipe")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, help="YAML configs to compare")
    parser.add_argument("--out-root", default=os.path.join(REPO, "output", "compare_methods"),
                        help="each run writes to <out-root>/<config path under configs/>")
    parser.add_argument("--table", default="", help="markdown file to write (default <out-root>/results.md)")
    parser.add_argument("--max-iter", type=int, default=0, help="override SOLVER.MAX_ITER (0 = the configs' budget)")
    parser.add_argument("--no-knn", action="store_true", help="disable the kNN monitor (smoke tests)")
    parser.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS of each run (0 = torch default)")
    parser.add_argument("--skip-existing", action="store_true", help="reuse runs whose summary.json exists")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                        help="deprecated spelling of the positional KEY VALUE overrides")
    parser.add_argument("overrides", nargs="*", default=[], metavar="KEY VALUE",
                        help="config overrides for every run, as train_net.py takes them")
    args = parser.parse_intermixed_args(argv)
    args.configs, moved = split_overrides(args.configs)
    args.opts = moved + list(args.overrides) + list(args.opts or [])

    opts = list(args.opts)
    if args.max_iter > 0:
        opts += ["SOLVER.MAX_ITER", str(args.max_iter)]
    if args.no_knn:
        opts += ["DATASETS.KNN_TRAIN", "", "DATASETS.KNN_TEST", ""]
    rows = []
    for config in args.configs:
        name = run_name(config)
        out = os.path.join(os.path.abspath(args.out_root), name)
        if args.skip_existing and os.path.isfile(os.path.join(out, "summary.json")):
            status = "reused"
        else:
            t0 = time.time()
            print(f"[compare_methods] training {name} -> {out}", flush=True)
            rc = train(os.path.abspath(config), out, opts, args.threads or None)
            status = "ok" if rc == 0 else f"failed ({rc}): see {os.path.join(out, 'compare_log.txt')}"
            print(f"[compare_methods] {name}: {status} in {time.time() - t0:.0f} s", flush=True)
        rows.append(collect(name, out, status))

    table = markdown_table(rows)
    budget = " ".join(opts) if opts else "each config's own SOLVER settings"
    text = (f"Same budget for every row (overrides: {budget}). kNN: weighted cosine kNN on the frozen backbone "
            f"(TEST.KNN_K, headline k); collapse std x sqrt(d): ~1 healthy, ~0 collapsed.\n\n{table}\n")
    path = args.table or os.path.join(os.path.abspath(args.out_root), "results.md")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda f: f.write(text.encode()))
    print(text)
    print(f"[compare_methods] table written to {path}")
    return 0 if all(r["status"] in ("ok", "reused") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
