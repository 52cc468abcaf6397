"""Periodic checkpoints with retention: a subclass of fvcore's ``PeriodicCheckpointer``.

Differences from fvcore's ``step`` (why it is overridden):

- names count COMPLETED steps (``model_0000100.pth`` holds the state after 100 optimizer
  steps, the convention of this codebase's logs); fvcore names the 0-based step index;
- ``max_to_keep`` looks at the directory, not at this session's list, so a resumed run
  also prunes the checkpoints of its earlier sessions; ``model_final.pth`` and the file
  ``last_checkpoint`` points at are never deleted, nor are files newer than the one just
  written (left by a killed session: they are overwritten as the run reaches them again).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Optional

from fvcore.common.checkpoint import PeriodicCheckpointer as _FvPeriodicCheckpointer

from ssl_zoo.checkpoint.files import checkpoint_iteration, list_checkpoints

logger = logging.getLogger(__name__)


class PeriodicCheckpointer(_FvPeriodicCheckpointer):
    """Save ``model_{n:07d}`` every ``period`` completed steps and ``model_final`` at ``max_iter``.

    Args:
        checkpointer: a ``ssl_zoo.checkpoint.Checkpointer``.
        period: steps between checkpoints (0 = only the final one).
        max_iter: total steps (``model_final`` is written when they are done).
        max_to_keep: periodic checkpoints kept (newest first; 0 or None = keep all).
    """

    def __init__(self, checkpointer, period: int, max_iter: Optional[int] = None,
                 max_to_keep: Optional[int] = None) -> None:
        super().__init__(checkpointer, max(int(period), 1), max_iter=max_iter,
                         max_to_keep=int(max_to_keep) if max_to_keep else None)
        self.period = int(period)

    def step(self, completed: int, **kwargs: Any) -> Optional[str]:
        """Save if ``completed`` steps end a period (before ``max_iter``) or reach ``max_iter``.

        Returns:
            the path written, else None.
        """
        completed = int(completed)
        state = {"iteration": completed, **kwargs}
        if self.max_iter is not None and completed >= self.max_iter:
            return self.checkpointer.save(f"{self.file_prefix}_final", **state)
        if self.period > 0 and completed % self.period == 0:
            path = self.checkpointer.save(f"{self.file_prefix}_{completed:07d}", **state)
            self.prune(completed)
            return path
        return None

    def prune(self, upto: int) -> None:
        """Delete periodic checkpoints beyond the ``max_to_keep`` newest with iteration <= ``upto``."""
        if not self.max_to_keep or not self.checkpointer.save_to_disk:
            return
        directory = self.checkpointer.save_dir
        protected = {os.path.abspath(p) for p in (self.checkpointer.get_checkpoint_file(),
                                                  self.checkpointer.last_good) if p}
        periodic = [p for p in list_checkpoints(directory) if 0 <= checkpoint_iteration(p) <= upto]
        for path in periodic[: max(0, len(periodic) - self.max_to_keep)]:
            if os.path.abspath(path) in protected:
                continue
            try:
                os.remove(path)
                logger.info(f"Removed {path} (SOLVER.CHECKPOINT_MAX_TO_KEEP = {self.max_to_keep})")
            except OSError as e:
                logger.warning(f"Could not remove old checkpoint {path}: {e}")


__all__ = ["PeriodicCheckpointer"]
