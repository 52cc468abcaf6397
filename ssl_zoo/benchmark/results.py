"""Benchmark results: ``OUTPUT_DIR/results.json`` and rows appended to a CSV, so runs compare."""
from __future__ import annotations

import csv
import datetime
import json
import os
from typing import Dict, List

from ssl_zoo.utils import comm
from ssl_zoo.utils.file_io import atomic_write

__all__ = ["write_results", "CSV_COLUMNS"]

CSV_COLUMNS = ("time", "task", "mode", "top1", "top5", "best_lr", "best_epochs", "seconds", "weights", "train",
               "test", "backbone", "output_dir", "metrics")


def write_results(rows: List[Dict], output_dir: str, csv_path: str, meta: Dict) -> None:
    """``output_dir/results.json`` (rows + meta, atomically) and one CSV row per result (appended)."""
    if not comm.is_main_process():
        return
    os.makedirs(output_dir, exist_ok=True)
    payload = json.dumps({"meta": meta, "results": rows}, indent=2, default=float).encode()
    atomic_write(os.path.join(output_dir, "results.json"), lambda f: f.write(payload))
    if not csv_path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(csv_path)), exist_ok=True)
    new = not os.path.isfile(csv_path)
    with open(csv_path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        if new:
            writer.writeheader()
        now = datetime.datetime.now().isoformat(timespec="seconds")
        for r in rows:
            # Every other numeric result of the row (mIoU, AP50, delta1, ...) as one JSON column, so
            # one CSV serves every task without rewriting its header.
            other = {k: v for k, v in r.items() if k not in CSV_COLUMNS and isinstance(v, (int, float))
                     and not isinstance(v, bool)}
            writer.writerow({**{k: meta.get(k, "") for k in CSV_COLUMNS}, **r, "time": now, "output_dir": output_dir,
                             "metrics": json.dumps(other, sort_keys=True)})
