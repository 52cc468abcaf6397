"""Atomic, safe, resumable checkpoints: a subclass of fvcore's ``Checkpointer``.

A checkpoint ``OUTPUT_DIR/<name>.pth`` is a dict::

    {"model": state dict (no "module." prefix), "optimizer": ..., <extra checkpointables>,
     "rng": [per-rank {"torch", "numpy", "python", "cuda"}], "iteration": int, "hooks": {...}, ...}

Writes are atomic: the file is written to a temporary name in the same directory,
flushed and fsync'ed, then ``os.replace``'d onto the real name (an atomic rename on
POSIX), and the ``last_checkpoint`` pointer file is replaced the same way. A crash or
an exception during ``save`` therefore leaves the previous checkpoint and pointer intact.

Everything saved is tensors and plain Python containers, so ``torch.load(...,
weights_only=True)`` (no arbitrary unpickling) reads it. Files that would need full
unpickling (arbitrary code) are refused with an error naming the file; convert foreign
checkpoints with ``tools/model_zoo.py convert`` instead (``ssl_zoo.checkpoint.files``).

What fvcore's class gives and what is overridden: the checkpointable registry, key-prefix
handling and the ``load`` / ``resume_or_load`` flow come from fvcore; file reading
(``_load_file``: weights-only, clear errors), writing (``save``: atomic, RNG of every rank,
refusal of non-finite / exploding states, mode 0644), the pointer (``tag_last_checkpoint``:
atomic) and resuming (``resume_path``: falls back to the newest checkpoint that loads when
``last_checkpoint`` is missing, dangling or damaged) are ours.
"""
from __future__ import annotations

import logging
import os
import random
from typing import Any, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch
from fvcore.common.checkpoint import Checkpointer as _FvCheckpointer
from torch import nn

from ssl_zoo.checkpoint.files import CheckpointError, list_checkpoints, load_file, save_file
from ssl_zoo.checkpoint.sanity import DEFAULT_MAX_ABS, state_problem
from ssl_zoo.utils import comm
from ssl_zoo.utils.file_io import atomic_write

logger = logging.getLogger(__name__)

_PREFIXES = ("module.", "_orig_mod.")  # DDP / DataParallel, torch.compile


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel / DataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def strip_prefixes(state_dict: Dict[str, Any]) -> Dict[str, Any]:
    """Remove leading ``module.`` (and ``_orig_mod.``) from every key, repeatedly."""
    out = {}
    for k, v in state_dict.items():
        changed = True
        while changed:
            changed = False
            for p in _PREFIXES:
                if k.startswith(p):
                    k, changed = k[len(p) :], True
        out[k] = v
    return out


def get_rng_state() -> Dict[str, Any]:
    """This process's random states, as tensors / plain values (``weights_only``-loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: Dict[str, Any]) -> None:
    """Inverse of ``get_rng_state``."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


class Checkpointer(_FvCheckpointer):
    """Saves and restores a model, its optimizer and other checkpointable objects.

    Args:
        output_dir: directory of the checkpoints and of the ``last_checkpoint`` file.
        model: the model (DDP-wrapped or not; it is saved without ``module.``).
        optimizer: optional optimizer.
        save_to_disk: write files (default: main process only; every rank still takes
            part in ``save`` because RNG states are gathered from all ranks).
        max_abs: a state with a floating value above this (or non-finite) is not saved
            (``ssl_zoo.checkpoint.sanity``; SOLVER.CHECKPOINT_MAX_ABS; <= 0 checks finiteness only).
        **checkpointables: other objects with ``state_dict`` / ``load_state_dict``
            (e.g. a GradScaler), saved under their keyword.

    Attributes:
        last_good: path of the last checkpoint this object wrote or resumed from ("" if none);
            named by the trainer's non-finite-loss error.

    Examples:
        >>> ckpt = Checkpointer("output", model, optimizer)
        >>> ckpt.save("model_0005000", iteration=5000, hooks={...})
        >>> extra = ckpt.resume_or_load("", resume=True)   # {} when there is nothing to resume
        >>> start_iter = extra.get("iteration", 0)
    """

    def __init__(self, output_dir: str, model: nn.Module, optimizer: Optional[torch.optim.Optimizer] = None,
                 *, save_to_disk: Optional[bool] = None, max_abs: float = DEFAULT_MAX_ABS,
                 **checkpointables: Any) -> None:
        if optimizer is not None:
            checkpointables["optimizer"] = optimizer
        super().__init__(unwrap_model(model), output_dir,
                         save_to_disk=comm.is_main_process() if save_to_disk is None else save_to_disk,
                         **checkpointables)
        self.logger = logger
        self.max_abs = float(max_abs)
        self.last_good = ""

    @property
    def output_dir(self) -> str:
        return self.save_dir

    # ------------------------------------------------------------------ save
    def save(self, name: str, *, loss: Optional[float] = None, **extra_state: Any) -> Optional[str]:
        """Write ``output_dir/<name>.pth`` atomically and point ``last_checkpoint`` at it.

        Must be called on every rank under DDP (the RNG states are all-gathered). A state with
        non-finite or exploding weights (or a non-finite ``loss``) is NOT written: the previous
        checkpoint stays the one ``last_checkpoint`` points at, and a warning names it.

        Args:
            name: file name without ``.pth``.
            loss: the last step's loss, checked for finiteness (None = not checked).
            **extra_state: saved as-is (e.g. ``iteration=..., hooks=...``); tensors and
                plain Python values only, so the file stays ``weights_only``-loadable.

        Returns:
            the path written (None on ranks that do not write, or when the state was refused).

        Raises:
            ssl_zoo.checkpoint.files.DiskFullError: out of space; nothing was lost.
        """
        rng = comm.all_gather(get_rng_state())
        if not self.save_to_disk:
            return None
        model_state = strip_prefixes(self.model.state_dict())
        problem = state_problem(model_state, loss, self.max_abs)
        path = os.path.join(self.save_dir, f"{name}.pth")
        if problem:
            logger.warning(f"Not saving {path}: {problem}. The last sane checkpoint stays "
                           f"'{self.last_good or 'none'}' (last_checkpoint points at it).")
            return None
        data: Dict[str, Any] = {"model": model_state}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data["rng"] = rng
        data.update(extra_state)
        os.makedirs(self.save_dir, exist_ok=True)
        logger.info(f"Saving checkpoint to {path}")
        save_file(data, path)
        self.tag_last_checkpoint(os.path.basename(path))
        self.last_good = path
        return path

    def tag_last_checkpoint(self, basename: str) -> None:
        atomic_write(os.path.join(self.save_dir, "last_checkpoint"), lambda f: f.write(basename.encode()))

    # ------------------------------------------------------------------ query
    def has_checkpoint(self) -> bool:
        """Whether ``output_dir/last_checkpoint`` points at an existing file."""
        path = self.get_checkpoint_file()
        return bool(path) and os.path.isfile(path)

    def get_checkpoint_file(self) -> str:
        """Path ``last_checkpoint`` names ("" if there is no pointer)."""
        try:
            with open(os.path.join(self.save_dir, "last_checkpoint")) as f:
                name = f.read().strip()
        except OSError:
            return ""
        return os.path.join(self.save_dir, name) if name else ""

    def get_all_checkpoint_files(self) -> List[str]:
        """``model_<iteration>.pth`` files by iteration, then ``model_final.pth``."""
        return list_checkpoints(self.save_dir)

    def find_resumable(self) -> Tuple[str, Optional[Dict[str, Any]]]:
        """The checkpoint ``--resume`` continues from, already read: ``(path, data)``.

        ``last_checkpoint``'s file when it loads; otherwise (pointer missing, dangling, or its
        file empty / damaged) the newest checkpoint in ``output_dir`` that loads, with a warning.
        ``("", None)`` when the directory holds no checkpoint at all.

        Raises:
            CheckpointError: checkpoints exist but none loads (refusing to silently start over).
        """
        pointer = self.get_checkpoint_file()
        candidates = self.get_all_checkpoint_files()
        if pointer and pointer in candidates:
            candidates.remove(pointer)
        order = ([pointer] if pointer and os.path.isfile(pointer) else []) + candidates[::-1]
        problems = []
        for path in order:
            try:
                data = self._load_file(path)
            except (CheckpointError, OSError) as e:
                problems.append(str(e))
                continue
            if path != pointer:
                why = ("is missing" if not pointer else f"names '{os.path.basename(pointer)}', which "
                       + ("does not exist" if not os.path.isfile(pointer) else "does not load"))
                logger.warning(f"--resume: {os.path.join(self.save_dir, 'last_checkpoint')} {why}; resuming from "
                               f"the newest checkpoint that loads, {path}.")
            return path, data
        if problems:
            raise CheckpointError(f"--resume: no checkpoint in '{self.save_dir}' loads ({len(problems)} tried; "
                                  f"newest: {problems[0]}). Refusing to start from scratch over them: fix or "
                                  f"delete them, or pass --overwrite to start a new run.")
        return "", None

    # ------------------------------------------------------------------ load
    def resume_or_load(self, path: str, *, resume: bool = True) -> Dict[str, Any]:
        """Resume everything from the last loadable checkpoint if ``resume`` and one exists;
        else load only the model weights from ``path`` ("" = nothing).

        Returns:
            the entries not consumed (``iteration``, ``hooks``, ...); ``{}`` if nothing loaded.
        """
        if resume:
            found, data = self.find_resumable()
            if found:
                return self.load(found, data=data)
            logger.info(f"No checkpoint found in {self.save_dir}: training from scratch.")
        if not path:
            return {}
        self.load(path, checkpointables=[], strict=False, restore_rng=False)
        return {}

    def _load_file(self, path: str) -> Dict[str, Any]:
        """Weights-only read (``ssl_zoo.checkpoint.files.load_file``); a bare state dict becomes ``{"model": ...}``."""
        data = load_file(path)
        if not isinstance(data, dict):
            raise CheckpointError(f"checkpoint '{path}' holds a {type(data).__name__}, not a dict of tensors")
        return data if "model" in data else {"model": data}

    def load(self, path: str, checkpointables: Optional[Iterable[str]] = None, *, strict: bool = True,
             restore_rng: bool = True, data: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Load ``path`` into the model (and checkpointables); returns the unconsumed entries.

        Args:
            path: a ``.pth`` file (ours, or a raw state dict / {"model": state dict}).
            checkpointables: which of the registered objects to restore (default: all).
            strict: require the model's keys to match exactly (resume); with False,
                missing / unexpected keys are logged (initialisation from other weights).
            restore_rng: restore this rank's RNG states if saved.
            data: ``path``'s content if already read (``find_resumable``).
        """
        if data is None:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"Checkpoint not found: '{path}'")
            data = self._load_file(path)
        logger.info(f"Loading checkpoint from {path}")
        incompatible = self.model.load_state_dict(strip_prefixes(data.pop("model")), strict=strict)
        if incompatible.missing_keys:
            logger.warning(f"Keys missing from {path}: {incompatible.missing_keys}")
        if incompatible.unexpected_keys:
            logger.warning(f"Unexpected keys in {path}: {incompatible.unexpected_keys}")
        names = list(self.checkpointables) if checkpointables is None else list(checkpointables)
        for key in names:
            if key in data:
                self.checkpointables[key].load_state_dict(data.pop(key))
            else:
                logger.warning(f"'{key}' not found in {path}; left as is.")
        rng = data.pop("rng", None)
        if restore_rng and rng:
            rank = comm.get_rank()
            if len(rng) != comm.get_world_size():
                logger.warning(f"{path} holds RNG states of {len(rng)} processes, this run has "
                               f"{comm.get_world_size()}: using process {min(rank, len(rng) - 1)}'s.")
            set_rng_state(rng[min(rank, len(rng) - 1)])
        if checkpointables is None:
            self.last_good = path
        return data
