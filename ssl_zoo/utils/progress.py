"""Progress with ETA that reads well in a terminal and in a log file.

A terminal (stderr is a tty) gets a tqdm bar. Anywhere else a tqdm bar is one ``\\r``-joined
line, so :func:`track` logs a plain line every ``log_every_s`` seconds instead
(``extract test: 120/400 batches (30%), 12.3 batch/s, eta 0:00:23``) and one at the end.
Only the main process reports.
"""
from __future__ import annotations

import datetime
import logging
import sys
import time
from typing import Iterable, Iterator, Optional, TypeVar

from tqdm import tqdm

from ssl_zoo.utils import comm

__all__ = ["track"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


def track(items: Iterable[T], desc: str, total: Optional[int] = None, unit: str = "batch",
          log_every_s: float = 30.0, tty: Optional[bool] = None) -> Iterator[T]:
    """Yield ``items`` while showing progress (a bar on a terminal, log lines otherwise)."""
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    if not comm.is_main_process():
        yield from items
        return
    if sys.stderr.isatty() if tty is None else tty:
        yield from tqdm(items, desc=desc, total=total, unit=unit, dynamic_ncols=True, leave=False)
        return
    t0 = last = time.perf_counter()
    n = 0
    for item in items:
        yield item
        n += 1
        now = time.perf_counter()
        if now - last >= log_every_s:
            last = now
            logger.info(_line(desc, n, total, unit, now - t0))
    if n:
        logger.info(_line(desc, n, total, unit, time.perf_counter() - t0, done=True))


def _line(desc: str, n: int, total: Optional[int], unit: str, elapsed: float, done: bool = False) -> str:
    rate = n / max(elapsed, 1e-9)
    plural = unit + ("es" if unit.endswith(("s", "sh", "ch", "x")) else "s")
    if done:
        return f"{desc}: {n} {unit if n == 1 else plural} done in {datetime.timedelta(seconds=int(elapsed))} ({rate:.1f} {unit}/s)"
    of = f"/{total} {plural} ({100 * n / total:.0f}%)" if total else f" {plural}"
    eta = f", eta {datetime.timedelta(seconds=int((total - n) / rate))}" if total else ""
    return f"{desc}: {n}{of}, {rate:.1f} {unit}/s{eta}"
