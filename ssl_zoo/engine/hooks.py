"""Standard training hooks (after detectron2's ``engine/hooks.py``).

Iterations in logs, metrics.jsonl, TensorBoard and checkpoints count COMPLETED optimizer
steps: the values of step ``trainer.iter`` are logged at ``trainer.iter + 1``, and
iteration 0 is the untrained (random-init) model. Hooks that write files do so on the
main process only; hooks that run collectives (checkpoint RNG gathering, kNN feature
gathering) run on every rank.

Suggested order (``ssl_zoo.engine.defaults.build_hooks``): LRScheduler, KNNMonitor,
CollapseMonitor, TrainingSummary, MetricsWriter, PeriodicCheckpointer, ProgressBar: monitors
log before the writer writes their values, and the metrics of a step are on disk before that
step's checkpoint. The method's own after-step update (BYOL's EMA) runs inside the trainer's
step, before every hook.
"""
from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ssl_zoo.checkpoint.periodic import PeriodicCheckpointer as _PeriodicCheckpointer
from ssl_zoo.engine.hook_base import HookBase
from ssl_zoo.engine.metrics_file import MetricsAppender, metrics_path, reset_metrics
from ssl_zoo.evaluation.collapse import effective_rank, normalized_std
from ssl_zoo.evaluation.features import extract_features
from ssl_zoo.evaluation.knn import knn_accuracy
from ssl_zoo.utils import comm
from ssl_zoo.utils.file_io import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["HookBase", "LRScheduler", "PeriodicCheckpointer", "MetricsWriter", "ProgressBar",
           "KNNMonitor", "CollapseMonitor", "TrainingSummary"]


def _is_period_end(trainer, period: int) -> bool:
    n = trainer.iter + 1
    return n == trainer.max_iter or (period > 0 and n % period == 0)


class LRScheduler(HookBase):
    """Sets each param group's lr to ``schedule(iter) * group["lr_mult"]`` before every step.

    A group with ``group["fixed_lr"]`` (``ssl_zoo.solver.build.get_param_groups``) gets the constant
    ``group["base_lr"]`` (scaled peak lr x lr_mult, set by ``build_optimizer``) instead: no warm-up,
    no decay (SimSiam's predictor, official ``--fix-pred-lr``). Groups without these keys (e.g. an
    optimizer state saved before they existed) follow the schedule. The logged ``lr`` is the schedule's.

    Args:
        schedule: ``step -> lr`` (a pure function, e.g. from ``build_lr_schedule``),
            called with the 0-based step about to run.
    """

    def __init__(self, schedule: Callable[[int], float]) -> None:
        self.schedule = schedule

    def before_step(self) -> None:
        lr = float(self.schedule(self.trainer.iter))
        for group in self.trainer.optimizer.param_groups:
            if group.get("fixed_lr", False):
                if "base_lr" not in group:
                    raise KeyError("LRScheduler: a fixed_lr param group needs 'base_lr' (set by build_optimizer)")
                group["lr"] = group["base_lr"]
            else:
                group["lr"] = lr * group.get("lr_mult", 1.0)
        self.trainer.put_scalar("lr", lr)


class PeriodicCheckpointer(_PeriodicCheckpointer, HookBase):
    """Saves ``model_{iteration:07d}.pth`` every ``period`` steps and ``model_final.pth`` at the end;
    also at the step boundary where a SIGTERM / SIGINT stop was requested (``trainer.stop_signal``).

    ``ssl_zoo.checkpoint.PeriodicCheckpointer`` (fvcore's, with retention) as a hook. The last
    step's loss is passed along so a non-finite or exploding state is never written
    (``Checkpointer.save``); ``trainer.last_checkpoint`` names the last sane checkpoint.

    Args:
        checkpointer: a ``ssl_zoo.checkpoint.Checkpointer``.
        period: steps between checkpoints (0 = only the final one).
        max_to_keep: periodic checkpoints kept (0 = all; SOLVER.CHECKPOINT_MAX_TO_KEEP).
    """

    def __init__(self, checkpointer, period: int, max_to_keep: int = 0) -> None:
        super().__init__(checkpointer, period, max_iter=None, max_to_keep=max_to_keep)

    def before_train(self) -> None:
        self.max_iter = self.trainer.max_iter
        self.trainer.last_checkpoint = self.checkpointer.last_good

    def _state(self) -> dict:
        return dict(self.trainer.state_dict(), loss=self.trainer.last_outputs.get("loss"))

    def after_step(self) -> None:
        n = self.trainer.completed_steps
        if n < self.trainer.max_iter:  # the final checkpoint is after_train's (after the last monitors)
            saved = self.step(n, **self._state())
            if saved is None and self.trainer.stop_signal:
                saved = self.checkpointer.save(f"model_{n:07d}", **self._state())
        self.trainer.last_checkpoint = self.checkpointer.last_good

    def after_train(self) -> None:
        if self.trainer.completed_steps >= self.trainer.max_iter:
            self.step(self.trainer.completed_steps, **self._state())
            self.trainer.last_checkpoint = self.checkpointer.last_good


class MetricsWriter(HookBase):
    """Writes scalars to the metrics file (``ssl_zoo.engine.metrics_file``) and TensorBoard.

    Every ``period`` steps, every ``checkpoint_period`` steps, at a requested stop and before /
    after training, each scalar whose latest value has not been written yet is appended,
    grouped by the iteration it belongs to: ``{"iteration": 20, "loss": ..., "lr": ..., ...}``.
    Place it BEFORE the PeriodicCheckpointer: the lines of a step are written (and fsync'ed
    at checkpoint steps) before that step's checkpoint, so a kill right after a checkpoint
    loses no line. On resume from step s, lines after s are dropped by an atomic rewrite (and
    purged from TensorBoard), so a killed and resumed run has the same file as an
    uninterrupted one. Main process only.

    Args:
        output_dir: where the metrics file and the event files go.
        period: steps between writes.
        tensorboard: also write TensorBoard event files.
        checkpoint_period: also write (and fsync) at these steps (SOLVER.CHECKPOINT_PERIOD; 0 = none).
    """

    def __init__(self, output_dir: str, period: int = 20, tensorboard: bool = True,
                 checkpoint_period: int = 0) -> None:
        self.output_dir = output_dir
        self.period = int(period)
        self.checkpoint_period = int(checkpoint_period)
        self.tensorboard = tensorboard
        self._enabled = comm.is_main_process()
        self._file: Optional[MetricsAppender] = None
        self._tb = None
        self._keep_upto = -1
        self._written: Dict[str, int] = {}  # name -> iteration of its last written value
        self._t_last = None
        self._n_last = 0

    @property
    def path(self) -> str:
        return metrics_path(self.output_dir)

    def before_train(self) -> None:
        if not self._enabled:
            return
        start = self.trainer.start_iter
        keep_upto = start if start > 0 else -1
        reset_metrics(self.output_dir, keep_upto)
        self._file = MetricsAppender(self.output_dir)
        self._keep_upto, self._written = keep_upto, {}
        if self.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(self.output_dir, purge_step=start + 1 if start > 0 else None)
        self._t_last, self._n_last = time.perf_counter(), start
        self._write()

    def after_step(self) -> None:
        if not self._enabled:
            return
        t = self.trainer
        at_checkpoint = bool(t.stop_signal) or (self.checkpoint_period > 0
                                                and t.completed_steps % self.checkpoint_period == 0)
        if at_checkpoint or _is_period_end(t, self.period):
            self._write()
        if at_checkpoint:
            self._file.sync()

    def after_train(self) -> None:
        if not self._enabled:
            return
        self._write()
        if self._file is not None:
            self._file.sync()
            self._file.close()
        if self._tb is not None:
            self._tb.close()

    def _write(self) -> None:
        by_iter: Dict[int, Dict[str, float]] = {}
        for name, (value, it) in self.trainer.storage.latest().items():
            if it > self._written.get(name, self._keep_upto):
                self._written[name] = it
                by_iter.setdefault(it, {})[name] = value
        now, n = time.perf_counter(), self.trainer.completed_steps
        if n > self._n_last and n in by_iter:  # throughput since the previous write
            by_iter[n]["images_per_s"] = self.trainer.images_per_step * (n - self._n_last) / max(now - self._t_last, 1e-9)
            self._t_last, self._n_last = now, n
        for it in sorted(by_iter):
            self._file.append({"iteration": it, **dict(sorted(by_iter[it].items()))})
            if self._tb is not None:
                for k, v in by_iter[it].items():
                    self._tb.add_scalar(k, v, it)
        self._file.flush()
        if self._tb is not None and by_iter:
            self._tb.flush()


class ProgressBar(HookBase):
    """A tqdm bar with ETA, images/s and the loss (main process only).

    Args:
        mininterval: seconds between refreshes; when stderr is not a terminal (a log
            file) it is raised to 30 s so the log stays readable.
    """

    def __init__(self, mininterval: float = 0.5) -> None:
        self.mininterval = mininterval
        self._bar = None

    def before_train(self) -> None:
        if not comm.is_main_process():
            return
        from tqdm import tqdm

        tty = sys.stderr.isatty()
        t = self.trainer
        self._bar = tqdm(total=t.max_iter, initial=t.start_iter, desc="train", unit="it", dynamic_ncols=True,
                         mininterval=self.mininterval if tty else max(self.mininterval, 30.0), smoothing=0.05)
        self._t0, self._n0 = time.perf_counter(), t.start_iter

    def after_step(self) -> None:
        if self._bar is None:
            return
        t = self.trainer
        n = t.completed_steps
        rate = t.images_per_step * (n - self._n0) / max(time.perf_counter() - self._t0, 1e-9)
        self._bar.set_postfix({"loss": f"{t.last_outputs.get('loss', float('nan')):.4f}", "img/s": f"{rate:.0f}"},
                              refresh=False)
        self._bar.update(1)

    def after_train(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class KNNMonitor(HookBase):
    """Weighted kNN accuracy (Wu et al. 2018; k=200/20, T=0.1) of the backbone's features.

    Runs before training (iteration 0 = random init, kept as ``random_init`` /
    "knn_random_init"), every ``period`` steps, and after training. Logs
    ``knn_top1_k{k}`` and ``knn_top5_k{k}`` (percent). The history is part of the hook's
    state, so a resumed run keeps the random-init number.

    Distributed: every rank runs the forward passes of every ``world_size``-th batch of
    each loader (rank r takes batches r, r + W, ...), the features are all-gathered (via
    CPU) and every rank computes the same accuracy. Each rank therefore iterates the
    loaders fully (cheap for in-memory data); the backbone is used unwrapped (no DDP
    collectives) in eval mode (BN uses running statistics, no SyncBN communication).

    Args:
        backbone: ``() -> nn.Module`` returning the network to evaluate; default
            ``trainer.unwrapped_model.backbone``.
        bank_loader / query_loader: iterables of ``(images [B,3,H,W], labels [B])``;
            re-iterated at every evaluation.
        period: steps between evaluations (0 = only before and after training).
        ks: neighbours; the first one is the headline number.
        temperature: T of the ``exp(sim / T)`` weights.
        num_classes: C (0 = inferred from the labels).
        device: where features are computed (default: the trainer's device).
    """

    def __init__(self, backbone: Optional[Callable[[], nn.Module]], bank_loader: Iterable, query_loader: Iterable,
                 period: int = 0, ks: Sequence[int] = (200, 20), temperature: float = 0.1, num_classes: int = 0,
                 device: Optional[torch.device] = None) -> None:
        self.backbone = backbone
        self.bank_loader, self.query_loader = bank_loader, query_loader
        self.period = int(period)
        self.ks = tuple(int(k) for k in ks)
        self.temperature = float(temperature)
        self.num_classes = int(num_classes)
        self.device = device
        self.history: List[Dict[str, float]] = []  # [{"iteration": n, "knn_top1_k200": ...}, ...]

    @property
    def headline(self) -> str:
        return f"knn_top1_k{self.ks[0]}"

    @property
    def random_init(self) -> Optional[float]:
        """Headline accuracy of the untrained network (None if not measured)."""
        for h in self.history:
            if h["iteration"] == 0:
                return h[self.headline]
        return None

    def _features(self, net: nn.Module, loader: Iterable, device: torch.device):
        world, rank = comm.get_world_size(), comm.get_rank()
        shard = (b for i, b in enumerate(loader) if i % world == rank) if world > 1 else loader
        try:
            f, y = extract_features(net, shard, device, desc="kNN features")
            f, y = F.normalize(f, dim=1).cpu(), y.cpu()  # cosine kNN
        except ValueError:  # this rank got no batch
            f, y = torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
        parts = [p for p in comm.all_gather((f, y)) if p[0].numel()]
        return torch.cat([p[0] for p in parts]).to(device), torch.cat([p[1] for p in parts]).to(device)

    def evaluate(self) -> Dict[str, float]:
        """Extract features and return ``{"knn_top1_k200": ..., "knn_top5_k200": ..., ...}``."""
        t = self.trainer
        net = self.backbone() if self.backbone is not None else t.unwrapped_model.backbone
        device = self.device or t.device
        bank_f, bank_y = self._features(net, self.bank_loader, device)
        query_f, query_y = self._features(net, self.query_loader, device)
        out = {}
        for k in self.ks:
            acc = knn_accuracy(bank_f, bank_y, query_f, query_y, k, self.temperature, self.num_classes)
            out[f"knn_top1_k{k}"], out[f"knn_top5_k{k}"] = acc["top1"], acc["top5"]
        return out

    def _run(self, iteration: int) -> None:
        start = time.perf_counter()
        result = self.evaluate()
        entry = {"iteration": iteration, **result}
        self.history = [h for h in self.history if h["iteration"] != iteration] + [entry]
        self.trainer.storage.put_scalars(iteration=iteration, **result)
        if iteration == 0:
            self.trainer.storage.put_scalar("knn_random_init", result[self.headline], iteration=0)
        logger.info(f"kNN at iteration {iteration}: " + ", ".join(f"{k}={v:.2f}" for k, v in result.items())
                    + f" ({time.perf_counter() - start:.1f}s)")

    def before_train(self) -> None:
        if self.trainer.start_iter == 0 and self.random_init is None:
            self._run(0)

    def after_step(self) -> None:
        n = self.trainer.iter + 1
        if self.period > 0 and n % self.period == 0 and n < self.trainer.max_iter:
            self._run(n)

    def after_train(self) -> None:
        n = self.trainer.completed_steps
        if not self.history or self.history[-1]["iteration"] != n:
            self._run(n)

    def state_dict(self) -> dict:
        return {"history": [dict(h) for h in self.history]}

    def load_state_dict(self, state: dict) -> None:
        self.history = [dict(h) for h in state.get("history", [])]


class CollapseMonitor(HookBase):
    """Logs collapse signals of ``trainer.last_outputs["embedding"]`` ``[B, d]`` every ``period`` steps.

    ``collapse_std``: mean per-dimension std of the L2-normalised embeddings (SimSiam
    Sec. 4.1): about ``1/sqrt(d)`` if healthy, 0 if collapsed; ``collapse_std_sqrt_d``
    is the same times sqrt(d) (about 1 if healthy). ``effective_rank`` (RankMe, Garrido et
    al. 2023): about how many directions the batch spans. A warning is logged when a run
    enters a collapsed state, once per episode, and an info line when it leaves it (with
    hysteresis: the signals must clear twice the thresholds, so a run hovering at a threshold
    does not warn every period):

    - complete collapse: ``collapse_std < 0.1 / sqrt(d)`` (every input gives one output);
    - dimensional collapse: ``effective_rank < min_effective_rank`` while the batch could span
      far more (``min(B, d) >= 4 * min_effective_rank``). The std misses this one: embeddings
      spread over 2-3 directions still have a large std (BYOL's tau = 0 under LARS in the README's
      comparison: std x sqrt(d) ~0.78 at effective rank ~3, a backbone no better than random init).

    Methods that return no "embedding" are skipped (logged once).

    Args:
        period: steps between measurements.
        min_effective_rank: dimensional-collapse threshold (LOG.COLLAPSE_MIN_RANK; 0 disables).
    """

    def __init__(self, period: int = 20, min_effective_rank: float = 3.0) -> None:
        self.period = int(period)
        self.min_effective_rank = float(min_effective_rank)
        self._warned_missing = False
        self._collapsed = False

    def after_step(self) -> None:
        if not _is_period_end(self.trainer, self.period):
            return
        z = self.trainer.last_outputs.get("embedding")
        if z is None or z.dim() != 2 or z.shape[0] < 2:
            if not self._warned_missing:
                logger.info("CollapseMonitor: the method returns no 'embedding' [B, d] (B >= 2); not monitoring.")
                self._warned_missing = True
            return
        d = z.shape[1]
        std = float(normalized_std(z))
        rank = float(effective_rank(z))
        self.trainer.put_scalar("collapse_std", std)
        self.trainer.put_scalar("collapse_std_sqrt_d", std * math.sqrt(d))
        self.trainer.put_scalar("effective_rank", rank)
        it = self.trainer.completed_steps
        check_rank = 0 < self.min_effective_rank and 4 * self.min_effective_rank <= min(z.shape)
        if not self._collapsed:
            reasons = []
            if std < 0.1 / math.sqrt(d):
                reasons.append(f"std of normalised embeddings {std:.2e} < 0.1/sqrt(d) = {0.1 / math.sqrt(d):.2e} "
                               f"(healthy ~ {1 / math.sqrt(d):.2e})")
            if check_rank and rank < self.min_effective_rank:
                reasons.append(f"effective rank {rank:.2f} < {self.min_effective_rank:g} (LOG.COLLAPSE_MIN_RANK) "
                               f"for a batch of {z.shape[0]} embeddings of dimension {d}: dimensional collapse")
            if reasons:
                logger.warning(f"Possible collapse at iteration {it}: " + "; ".join(reasons) + ".")
                self._collapsed = True
        elif std >= 0.2 / math.sqrt(d) and (not check_rank or rank >= 2 * self.min_effective_rank):
            logger.info(f"Collapse signals back to healthy at iteration {it}: std x sqrt(d) "
                        f"{std * math.sqrt(d):.3f}, effective rank {rank:.2f}.")
            self._collapsed = False


class TrainingSummary(HookBase):
    """At the end of training writes ``output_dir/summary.json``, ``summary.png`` and logs a table.

    summary.json: final loss, kNN top-1 of the trained backbone and at random init and
    their difference (if a KNNMonitor runs), iterations, wall time and images/s (wall
    clock of all sessions of a resumed run, monitors included). The loss curve (every
    ``period`` steps) and the timings are hook state, so they survive a resume.

    Args:
        output_dir: where the files go (main process only).
        period: steps between points of the loss curve.
    """

    def __init__(self, output_dir: str, period: int = 20) -> None:
        self.output_dir = output_dir
        self.period = int(period)
        self.loss_curve: List[List[float]] = []
        self.wall_time = 0.0
        self.images = 0
        self._t0 = None

    def before_train(self) -> None:
        self._t0 = time.perf_counter()

    def after_step(self) -> None:
        self.images += self.trainer.images_per_step
        if _is_period_end(self.trainer, self.period) and "loss" in self.trainer.last_outputs:
            self.loss_curve.append([self.trainer.completed_steps, float(self.trainer.last_outputs["loss"])])

    def _elapsed(self) -> float:
        return self.wall_time + (time.perf_counter() - self._t0 if self._t0 is not None else 0.0)

    def state_dict(self) -> dict:
        return {"loss_curve": [list(p) for p in self.loss_curve], "wall_time": self._elapsed(), "images": self.images}

    def load_state_dict(self, state: dict) -> None:
        self.loss_curve = [list(p) for p in state.get("loss_curve", [])]
        self.wall_time = float(state.get("wall_time", 0.0))
        self.images = int(state.get("images", 0))

    def _knn(self) -> Optional[KNNMonitor]:
        return next((h for h in self.trainer.hooks if isinstance(h, KNNMonitor)), None)

    def summary(self) -> Dict[str, Optional[float]]:
        t = self.trainer
        wall = self._elapsed()
        s: Dict[str, Optional[float]] = {
            "iterations": t.completed_steps,
            "final_loss": t.last_outputs.get("loss", self.loss_curve[-1][1] if self.loss_curve else None),
            "wall_time_s": round(wall, 2),
            "images_per_s": round(self.images / wall, 2) if wall > 0 else None,
        }
        knn = self._knn()
        if knn is not None and knn.history:
            s["knn_metric"] = knn.headline
            s["knn_top1"] = knn.history[-1][knn.headline]
            s["knn_top1_random_init"] = knn.random_init
            s["knn_top1_delta"] = None if knn.random_init is None else s["knn_top1"] - knn.random_init
        return s

    def after_train(self) -> None:
        if not comm.is_main_process():
            return
        s = self.summary()
        os.makedirs(self.output_dir, exist_ok=True)
        text = json.dumps(s, indent=2).encode()
        atomic_write(os.path.join(self.output_dir, "summary.json"), lambda f: f.write(text))
        try:
            self._plot(os.path.join(self.output_dir, "summary.png"))
        except Exception as e:  # a plotting problem must not fail a finished training
            logger.warning(f"Could not write the summary plot: {e}")
        from tabulate import tabulate

        rows = [(k, f"{v:.4f}" if isinstance(v, float) else v) for k, v in s.items()]
        logger.info("Training summary:\n" + tabulate(rows, headers=["metric", "value"], tablefmt="pipe"))

    def _plot(self, path: str) -> None:
        """Loss curve and kNN curve with the random-init baseline; a panel without data is left out
        (no plot at all when there is nothing to draw)."""
        from matplotlib.figure import Figure  # no pyplot: no global backend, headless (Agg canvas)

        loss = self.loss_curve or [[it, v] for it, v in self.trainer.storage.history("loss")]
        knn = self._knn()
        knn_pts = [(h["iteration"], h[knn.headline]) for h in knn.history if knn.headline in h] if knn else []
        panels = (["loss"] if loss else []) + (["knn"] if knn_pts else [])
        if not panels:
            logger.info("No loss or kNN point to plot: summary.png not written.")
            return
        fig = Figure(figsize=(5 * len(panels), 3.5))
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, panel in zip(axes, panels):
            if panel == "loss":
                x, y = zip(*loss)
                ax.plot(x, y, marker="o" if len(x) < 3 else None)
                ax.set(xlabel="iteration", ylabel="loss", title="training loss")
                continue
            x, y = zip(*knn_pts)
            ax.plot(x, y, marker="o", label="trained")
            if knn.random_init is not None:  # the baseline every SSL number should be read against
                ax.axhline(knn.random_init, color="grey", linestyle="--",
                           label=f"random init ({knn.random_init:.1f})")
            ax.set(xlabel="iteration", ylabel="top-1 (%)", title=knn.headline)
            ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
