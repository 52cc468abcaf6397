"""The run's metrics file: one JSON object per line, ``{"iteration": n, "<name>": value, ...}``.

Every read and write of it goes through this module, so renaming the file is one line
(``METRICS_FILE``). Guarantees, for a run killed at any moment (SIGKILL included):

- lines are only appended while training; a torn last line is skipped on read;
- on resume from step s, the lines after s are dropped by an ATOMIC rewrite (temp file +
  rename), so a kill during the rewrite leaves the old file, never a truncated one;
- :func:`read_metrics` also truncates by iteration on read: a row whose iteration is not
  larger than its predecessor's starts a new session, and the rows it supersedes are
  dropped, so even a file appended to by an older version reads as one clean history.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable, List, Optional

from ssl_zoo.utils.file_io import atomic_write

METRICS_FILE = "metrics.jsonl"  # JSON lines: one object per line (jsonlines.org)


def metrics_path(output_dir: str) -> str:
    """``output_dir/metrics.jsonl``."""
    return os.path.join(output_dir, METRICS_FILE)


def _parse(lines: Iterable[str]) -> List[Dict[str, Any]]:
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a torn line of a killed write
        if isinstance(row, dict) and isinstance(row.get("iteration"), int):
            rows.append(row)
    return rows


def read_metrics(output_dir: str, *, upto: Optional[int] = None) -> List[Dict[str, Any]]:
    """The rows of ``output_dir``'s metrics file as one history (``[]`` if there is none).

    Args:
        output_dir: the run directory.
        upto: drop rows after this iteration.

    A row with an iteration lower than the previous row's means a resumed session started
    there: earlier rows with an iteration >= it are superseded and dropped.
    """
    try:
        with open(metrics_path(output_dir)) as f:
            rows = _parse(f)
    except OSError:
        return []
    out: List[Dict[str, Any]] = []
    for row in rows:
        if out and row["iteration"] < out[-1]["iteration"]:
            out = [r for r in out if r["iteration"] < row["iteration"]]
        out.append(row)
    return [r for r in out if upto is None or r["iteration"] <= upto]


def reset_metrics(output_dir: str, keep_upto: int) -> int:
    """Atomically rewrite the file with the rows up to ``keep_upto`` (-1 = none); returns rows kept."""
    kept = read_metrics(output_dir, upto=keep_upto) if keep_upto >= 0 else []
    os.makedirs(output_dir, exist_ok=True)
    data = "".join(json.dumps(r) + "\n" for r in kept).encode()
    atomic_write(metrics_path(output_dir), lambda f: f.write(data))
    return len(kept)


class MetricsAppender:
    """Append rows to the metrics file; :meth:`sync` makes them durable (before a checkpoint)."""

    def __init__(self, output_dir: str) -> None:
        self._file = open(metrics_path(output_dir), "a")

    def append(self, row: Dict[str, Any]) -> None:
        self._file.write(json.dumps(row) + "\n")

    def flush(self) -> None:
        self._file.flush()

    def sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


__all__ = ["METRICS_FILE", "MetricsAppender", "metrics_path", "read_metrics", "reset_metrics"]
