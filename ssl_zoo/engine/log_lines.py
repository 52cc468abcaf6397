"""Logs a person can read: one plain line per ``LOG.PERIOD`` steps and the model's size at start.

A redirected tqdm bar is one ``\\r``-joined line in a log file, so when the console is not a
terminal (a batch job, ``> log``, ``nohup``) :class:`PeriodicLogLine` writes a line instead:

    iter 120/3125  loss 3.8101  lr 0.1500  img/s 840  data 3%  eta 0:12:31  peak_mem 1.21 GB (cuda)

``data`` is the share of wall time spent waiting for the next batch (a slow disk or too few
workers shows here first). In a terminal the bar stays and the lines go to ``log.txt`` only.
"""
from __future__ import annotations

import datetime
import logging
import resource
import sys
import time
from typing import Optional

import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

from ssl_zoo.engine.hook_base import HookBase
from ssl_zoo.utils import comm

__all__ = ["PeriodicLogLine", "log_model_size", "peak_memory"]

logger = logging.getLogger(__name__)


def peak_memory(device: torch.device) -> str:
    """Peak memory so far: CUDA's max allocated on a GPU, else the process's peak resident set."""
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GB (cuda)"
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return f"{kb / 2**20:.2f} GB (rss)"


class PeriodicLogLine(HookBase):
    """Logs iteration, loss, lr, img/s, data-wait %, ETA and peak memory every ``period`` steps.

    Args:
        period: steps between lines (``LOG.PERIOD``); the last step always gets one.
        to_console: INFO (console + log.txt) if True, DEBUG (log.txt only) if False; default:
            True unless stdout is a terminal.
    """

    def __init__(self, period: int, to_console: Optional[bool] = None) -> None:
        self.period = max(int(period), 1)
        self.level = logging.INFO if (not sys.stdout.isatty() if to_console is None else to_console) else logging.DEBUG
        self._t0 = self._t_last = 0.0
        self._n_last = self._n0 = 0
        self._data_last = 0.0

    def before_train(self) -> None:
        self._t0 = self._t_last = time.perf_counter()
        self._n0 = self._n_last = self.trainer.start_iter
        self._data_last = self.trainer.data_time_total

    def after_step(self) -> None:
        t = self.trainer
        n = t.completed_steps
        if not comm.is_main_process() or (n % self.period and n != t.max_iter):
            return
        now = time.perf_counter()
        window = max(now - self._t_last, 1e-9)
        steps = max(n - self._n_last, 1)
        data_share = 100.0 * (t.data_time_total - self._data_last) / window
        per_step = (now - self._t0) / max(n - self._n0, 1)
        eta = datetime.timedelta(seconds=int(per_step * (t.max_iter - n)))
        values = t.storage.latest_values()
        loss = t.last_outputs.get("loss", float("nan"))
        lr = values.get("lr", float("nan"))
        logger.log(self.level, f"iter {n}/{t.max_iter}  loss {loss:.4f}  lr {lr:.4g}  "
                               f"img/s {t.images_per_step * steps / window:.0f}  data {data_share:.0f}%  eta {eta}  "
                               f"peak_mem {peak_memory(t.device)}")
        self._t_last, self._n_last, self._data_last = now, n, t.data_time_total


def log_model_size(model: nn.Module, backbone: nn.Module, image_size: int, device: torch.device) -> None:
    """Log the parameter counts and the backbone's forward FLOPs (fvcore) for one image."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_backbone = sum(p.numel() for p in backbone.parameters())
    flops = ""
    try:
        was_training = backbone.training
        backbone.eval()
        x = torch.zeros(1, 3, int(image_size), int(image_size), device=device)
        with torch.no_grad():
            count = FlopCountAnalysis(backbone, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            flops = f"; backbone {count.total() / 1e9:.3f} GFLOPs per {image_size}x{image_size} image (fvcore, 1 MAC = 1 FLOP)"
        backbone.train(was_training)
    except Exception as e:  # noqa: BLE001 - a tracing limitation must not stop training
        flops = f"; FLOPs not counted ({type(e).__name__})"
    logger.info(f"Model: {total / 1e6:.2f} M parameters ({trainable / 1e6:.2f} M trainable), backbone "
                f"{n_backbone / 1e6:.2f} M{flops}")
