"""Logging to stdout (main process) and ``OUTPUT_DIR/log.txt`` (after detectron2's logger)."""
from __future__ import annotations

import logging
import os
import sys
from typing import Optional

from ssl_zoo.utils import comm

_FMT = "[%(asctime)s %(name)s %(levelname)s] %(message)s"
_DATEFMT = "%m/%d %H:%M:%S"


def setup_logger(output: Optional[str] = None, distributed_rank: Optional[int] = None, name: str = "ssl_zoo") -> logging.Logger:
    """Configure the ``name`` logger.

    Args:
        output: a directory (the log goes to ``output/log.txt``) or a file path ending in
            ``.txt``/``.log``; None = stdout only. Rank r > 0 writes ``log.txt.rank{r}``.
        distributed_rank: default ``comm.get_rank()``; only rank 0 logs to stdout.
        name: logger name (children such as ``ssl_zoo.engine.trainer`` inherit it).

    Calling it again replaces the handlers an earlier call added (one process running
    several evaluations logs each to its own directory, and every line once).
    """
    rank = comm.get_rank() if distributed_rank is None else distributed_rank
    logger = logging.getLogger(name)
    for old in [h for h in logger.handlers if getattr(h, "_ssl_zoo", False)]:
        logger.removeHandler(old)
        old.close()
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    formatter = logging.Formatter(_FMT, datefmt=_DATEFMT)
    if rank == 0:
        sh = logging.StreamHandler(stream=sys.stdout)
        sh.setLevel(logging.INFO)
        sh.setFormatter(formatter)
        sh._ssl_zoo = True
        logger.addHandler(sh)
    if output is not None:
        path = output if output.endswith((".txt", ".log")) else os.path.join(output, "log.txt")
        if rank > 0:
            path = f"{path}.rank{rank}"
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fh = logging.FileHandler(path, mode="a")
        fh.setLevel(logging.DEBUG)
        fh.setFormatter(formatter)
        fh._ssl_zoo = True
        logger.addHandler(fh)
    return logger
