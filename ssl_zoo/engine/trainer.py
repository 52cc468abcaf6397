"""``SSLTrainer``: the training loop of every method (detectron2's ``SimpleTrainer`` idea)."""
from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
import weakref
from collections import defaultdict, deque
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ssl_zoo.checkpoint.checkpointer import unwrap_model
from ssl_zoo.engine.hook_base import HookBase
from ssl_zoo.utils import comm

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)  # how cluster schedulers (and Ctrl-C) preempt a job


class TrainingInterrupted(Exception):
    """Training stopped at a step boundary on SIGTERM / SIGINT, after saving a checkpoint.

    Attributes:
        signum: the signal. iteration: steps completed. checkpoint: the file saved ("" if none).
    """

    def __init__(self, signum: int, iteration: int, checkpoint: str) -> None:
        self.signum, self.iteration, self.checkpoint = signum, iteration, checkpoint
        where = f"saved {checkpoint}" if checkpoint else "no checkpoint could be saved"
        super().__init__(f"stopped by {signal.Signals(signum).name} after iteration {iteration}; {where}. "
                         f"Continue with --resume.")


class MetricStorage:
    """History of named scalars, each value tagged with the iteration it belongs to.

    ``iteration`` is counted in completed optimizer steps: a value put while step
    ``trainer.iter`` runs is stored at ``trainer.iter + 1``; values put before training
    (e.g. the kNN accuracy at random init) at ``start_iter``.

    Args:
        max_history: values kept per name (oldest dropped first).
    """

    def __init__(self, max_history: int = 100_000) -> None:
        self.step = 0  # set by the trainer
        self._history: Dict[str, Deque[Tuple[int, float]]] = defaultdict(lambda: deque(maxlen=max_history))

    def put_scalar(self, name: str, value: float, iteration: Optional[int] = None) -> None:
        self._history[name].append((self.step if iteration is None else int(iteration), float(value)))

    def put_scalars(self, iteration: Optional[int] = None, **values: float) -> None:
        for k, v in values.items():
            self.put_scalar(k, v, iteration)

    def history(self, name: str) -> List[Tuple[int, float]]:
        """``[(iteration, value), ...]`` of ``name`` (empty if never put)."""
        return list(self._history.get(name, ()))

    def latest(self) -> Dict[str, Tuple[float, int]]:
        """``{name: (value, iteration)}`` of the last value of every name."""
        return {k: (h[-1][1], h[-1][0]) for k, h in self._history.items() if h}

    def latest_values(self) -> Dict[str, float]:
        return {k: v for k, (v, _) in self.latest().items()}

    def mean(self, name: str, window: int) -> float:
        """Mean of the last ``window`` values of ``name``."""
        h = list(self._history[name])[-window:]
        return sum(v for _, v in h) / max(len(h), 1)


class SSLTrainer:
    """Runs an ``SSLMethod`` for ``max_iter`` optimizer steps with hooks.

    The loop (an "iteration" is one optimizer step)::

        hooks.before_train()                 # e.g. kNN accuracy at random init
        for iter in range(start_iter, max_iter):
            hooks.before_step()              # e.g. set this step's learning rate
            for micro in range(accum_steps): # gradient accumulation
                views, labels = data.batch_transform(next(data.iterator), iter * accum_steps + micro)
                with no_sync() unless last micro (DDP), autocast(amp_dtype):
                    outputs = model(views, labels)       # {"loss", scalars, "embedding"}
                if not isfinite(outputs["loss"]): raise FloatingPointError(iter, outputs)
                backward(outputs["loss"] / accum_steps)  # scaled by GradScaler for fp16
            clip_grad_norm(clip_grad_norm); optimizer.step(); optimizer.zero_grad(set_to_none=True)
            model.after_step(iter, max_iter)  # the method's own update, e.g. BYOL's EMA target
            last_outputs = detached outputs (scalars averaged over the micro-batches)
            hooks.after_step()               # logging, checkpoints, monitors
        hooks.after_train()                  # final kNN, final checkpoint, summary

    A non-finite loss raises before the backward pass and the optimizer step, so no
    hook (and no checkpoint) ever sees the corrupted state. An exception stops training
    at once: it is logged and re-raised, and ``after_train`` is NOT called.

    SIGTERM / SIGINT (``handle_signals``, main thread only) do not interrupt a step: the
    signal is recorded, all processes agree on it at the end of the step (one tiny
    all-reduce per step under DDP), ``stop_signal`` is set for the hooks (the
    MetricsWriter writes, the PeriodicCheckpointer saves) and :class:`TrainingInterrupted`
    is raised after the step's hooks. ``--resume`` then continues exactly. The same signal
    again, at least 2 s later, falls back to the previous handler (a second Ctrl-C stops at once).

    Args:
        model: the method (``SSLMethod``), possibly wrapped in DistributedDataParallel.
        optimizer: optimizer over the model's parameters.
        data: object with ``iterator`` (infinite iterator of batches) and
            ``batch_transform(batch, index) -> (views: list of [B,3,H,W], labels [B] or None)``,
            where ``index = iter * accum_steps + micro`` counts micro-batches.
        max_iter: total optimizer steps.
        accum_steps: micro-batches per optimizer step (loss divided by it).
        amp_dtype: None (fp32), ``torch.bfloat16`` or ``torch.float16`` (with a GradScaler).
        clip_grad_norm: max global gradient norm; 0 = no clipping.
        device: training device (default: the device of the model's first parameter).
        hooks: ``HookBase`` instances, called in this order.
        handle_signals: stop cleanly at a step boundary on SIGTERM / SIGINT.

    Attributes:
        iter / start_iter / max_iter: current step (0-based), first step of this run
            (= steps already completed, > 0 when resumed), number of steps.
        completed_steps: optimizer steps done (``iter + 1`` in ``after_step``); the
            "iteration" of logs and checkpoints, 0 = untrained.
        model / unwrapped_model: as given / without the DDP wrapper.
        last_outputs: dict of the last step: scalars as floats, ``"embedding"`` as a
            detached tensor of the last micro-batch (if the method returns one).
        storage: ``MetricStorage`` of every logged scalar.
        images_per_step: global images per optimizer step (known after the first step).
        grad_scaler: the fp16 ``GradScaler`` (None otherwise); saved by ``state_dict``.
        stop_signal: the signal number all processes agreed to stop on at this step (0 = none).
        last_checkpoint: the last sane checkpoint (set by the PeriodicCheckpointer hook).

    Note: the non-finite check reads the step's scalars on the host once per
    micro-batch (one device sync), which is also how they reach the logs.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, data: Any, max_iter: int, *,
                 accum_steps: int = 1, amp_dtype: Optional[torch.dtype] = None, clip_grad_norm: float = 0.0,
                 device: Optional[torch.device] = None, hooks: Sequence[HookBase] = (),
                 handle_signals: bool = True) -> None:
        if accum_steps < 1:
            raise ValueError(f"accum_steps must be >= 1, got {accum_steps}")
        if amp_dtype not in (None, torch.bfloat16, torch.float16):
            raise ValueError(f"amp_dtype must be None, torch.bfloat16 or torch.float16, got {amp_dtype}")
        self.model = model
        self.unwrapped_model = unwrap_model(model)
        self.optimizer = optimizer
        self.data = data
        self.max_iter = int(max_iter)
        self.accum_steps = int(accum_steps)
        self.amp_dtype = amp_dtype
        self.clip_grad_norm = float(clip_grad_norm)
        if device is None:
            device = next(self.unwrapped_model.parameters()).device
        self.device = torch.device(device)
        # fp16 needs loss scaling; bf16 has fp32's exponent range and does not.
        self.grad_scaler = torch.amp.GradScaler(self.device.type) if amp_dtype == torch.float16 else None
        self.iter = self.start_iter = 0
        self.completed_steps = 0  # optimizer steps done, the "iteration" of logs and checkpoints
        self.last_outputs: Dict[str, Any] = {}
        self.storage = MetricStorage()
        self.data_time_total = 0.0  # seconds spent in next(data.iterator) since construction
        self.images_per_step = 0
        self.handle_signals = handle_signals
        self.stop_signal = 0
        self.last_checkpoint = ""
        self._pending_signal = 0
        self.hooks: List[HookBase] = []
        self.register_hooks(hooks)

    # ------------------------------------------------------------------ hooks
    def register_hooks(self, hooks: Sequence[Optional[HookBase]]) -> None:
        for h in hooks:
            if h is None:
                continue
            # weak proxy: hooks referencing the trainer must not create a reference cycle
            h.trainer = weakref.proxy(self)
            self.hooks.append(h)

    def put_scalar(self, name: str, value: float) -> None:
        """Log a scalar at the current step (used by hooks)."""
        self.storage.put_scalar(name, value)

    def _hook_keys(self) -> List[str]:
        keys, seen = [], defaultdict(int)
        for h in self.hooks:
            name = type(h).__qualname__
            keys.append(name if seen[name] == 0 else f"{name}.{seen[name]}")
            seen[name] += 1
        return keys

    def state_dict(self) -> Dict[str, Any]:
        """What a checkpoint needs besides model / optimizer: steps done, hook and scaler states."""
        state: Dict[str, Any] = {"iteration": self.completed_steps, "hooks": {}}
        for key, h in zip(self._hook_keys(), self.hooks):
            s = h.state_dict()
            if s:
                state["hooks"][key] = s
        if self.grad_scaler is not None:
            state["grad_scaler"] = self.grad_scaler.state_dict()
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Resume from ``state_dict()`` output (e.g. the dict ``Checkpointer.resume_or_load`` returns)."""
        self.start_iter = self.iter = self.completed_steps = int(state.get("iteration", 0))
        hook_states = state.get("hooks", {})
        for key, h in zip(self._hook_keys(), self.hooks):
            if key in hook_states:
                h.load_state_dict(hook_states[key])
        if self.grad_scaler is not None and "grad_scaler" in state:
            self.grad_scaler.load_state_dict(state["grad_scaler"])

    # ------------------------------------------------------------------ loop
    def train(self) -> Dict[str, Any]:
        """Run the loop from ``start_iter`` to ``max_iter``; returns ``last_outputs``' scalars."""
        logger.info(f"Starting training from iteration {self.start_iter} to {self.max_iter}")
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        previous = self._install_signal_handlers()
        try:
            self.storage.step = self.start_iter
            for h in self.hooks:
                h.before_train()
            for self.iter in range(self.start_iter, self.max_iter):
                self.storage.step = self.iter + 1
                for h in self.hooks:
                    h.before_step()
                self.run_step()
                self.completed_steps = self.iter + 1
                self.stop_signal = self._agreed_stop_signal()
                for h in self.hooks:
                    h.after_step()
                if self.stop_signal and self.completed_steps < self.max_iter:  # on the last step: finish normally
                    raise TrainingInterrupted(self.stop_signal, self.completed_steps, self.last_checkpoint)
            self.iter = self.completed_steps = max(self.max_iter, self.start_iter)  # hooks' after_train can tell that training completed
        except TrainingInterrupted as e:
            logger.warning(str(e))
            raise
        except Exception:
            logger.exception(f"Exception during training at iteration {self.iter}:")
            raise
        finally:
            self._restore_signal_handlers(previous)
        self.storage.step = self.max_iter
        for h in self.hooks:
            h.after_train()
        return {k: v for k, v in self.last_outputs.items() if isinstance(v, float)}

    # ------------------------------------------------------------------ signals
    def _install_signal_handlers(self) -> Dict[int, Any]:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}

        first_at = {}

        def on_signal(signum, frame):
            if self._pending_signal == signum:
                # The same signal often arrives twice at once (Ctrl-C reaches the whole process group
                # and the launcher forwards it; SLURM signals every process): only a repeat at least
                # 2 s later means "stop now" and falls back to the previous behaviour.
                if time.monotonic() - first_at[signum] >= 2.0:
                    signal.signal(signum, previous.get(signum, signal.SIG_DFL))
                    signal.raise_signal(signum)
                return
            first_at[signum] = time.monotonic()
            self._pending_signal = signum
            logger.warning(f"{signal.Signals(signum).name} received: saving a checkpoint and stopping after "
                           f"the current step.")

        for s in STOP_SIGNALS:
            previous[s] = signal.signal(s, on_signal)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: Dict[int, Any]) -> None:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)

    def _agreed_stop_signal(self) -> int:
        """This step's stop signal, the same on every rank (max over ranks under DDP)."""
        if comm.get_world_size() == 1:
            return self._pending_signal
        flag = torch.tensor([self._pending_signal], dtype=torch.int64,
                            device=self.device if self.device.type == "cuda" else "cpu")
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return int(flag.item())

    def _sync_context(self, last_micro: bool):
        # Skip DDP's gradient all-reduce on all but the last micro-batch.
        if not last_micro and isinstance(self.model, nn.parallel.DistributedDataParallel):
            return self.model.no_sync()
        return contextlib.nullcontext()

    def run_step(self) -> None:
        """One optimizer step over ``accum_steps`` micro-batches."""
        sums: Dict[str, float] = defaultdict(float)
        embedding = None
        images = 0
        for micro in range(self.accum_steps):
            t_wait = time.perf_counter()
            batch = next(self.data.iterator)
            self.data_time_total += time.perf_counter() - t_wait  # waiting for the loader (log_lines' data %)
            views, labels = self.data.batch_transform(batch, self.iter * self.accum_steps + micro)
            images += views[0].shape[0]
            with self._sync_context(micro == self.accum_steps - 1):
                with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                    enabled=self.amp_dtype is not None):
                    outputs = self.model(views, labels)
                scalars = self._scalars(outputs)  # one host sync per micro-batch
                if not all(math.isfinite(v) for v in scalars.values()):
                    raise FloatingPointError(
                        f"Loss became infinite or NaN at iteration={self.iter} (micro-batch {micro}); "
                        f"loss terms: {scalars}. Training stopped before the optimizer step. The last "
                        f"sane checkpoint is {self.last_checkpoint or 'none (none was written)'}: resume from it "
                        f"with a lower learning rate (or stronger gradient clipping)."
                    )
                loss = outputs["loss"] / self.accum_steps
                if self.grad_scaler is not None:
                    loss = self.grad_scaler.scale(loss)
                loss.backward()
            for k, v in scalars.items():
                sums[k] += v
            if "embedding" in outputs:
                embedding = outputs["embedding"].detach()
        grad_norm = self._clip()
        if self.grad_scaler is not None:
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        # The method's own after-step update (BYOL's EMA target, MoCo's key encoder), before any
        # hook can checkpoint the step; its scalars (tau) are logged with the step's.
        self.storage.put_scalars(**self.unwrapped_model.after_step(self.iter, self.max_iter))

        self.images_per_step = images * comm.get_world_size()
        self.last_outputs = {k: v / self.accum_steps for k, v in sums.items()}
        if grad_norm is not None:
            self.last_outputs["grad_norm"] = grad_norm
        self.storage.put_scalars(**self.last_outputs)
        if embedding is not None:
            self.last_outputs["embedding"] = embedding

    @staticmethod
    def _scalars(outputs: Dict[str, Any]) -> Dict[str, float]:
        """0-dim tensors / numbers of the method's outputs as floats (the loss is always non-finite-checked)."""
        if "loss" not in outputs:
            raise KeyError(f"The method's forward must return a dict with 'loss'; got keys {sorted(outputs)}")
        out: Dict[str, float] = {}
        names, tensors = [], []
        for k, v in outputs.items():
            if isinstance(v, torch.Tensor) and v.numel() == 1:
                names.append(k)
                tensors.append(v.detach().float().reshape(()))
            elif isinstance(v, (int, float)):
                out[k] = float(v)
        if tensors:
            out.update(zip(names, torch.stack(tensors).cpu().tolist()))
        return out

    def _clip(self) -> Optional[float]:
        if self.clip_grad_norm <= 0:
            return None
        if self.grad_scaler is not None:
            self.grad_scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
        params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
        return float(torch.nn.utils.clip_grad_norm_(params, self.clip_grad_norm))
