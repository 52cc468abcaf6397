"""Atomic, resumable checkpoints (after detectron2's / fvcore's ``Checkpointer``).

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
checkpoints with ``tools/model_zoo.py convert`` instead.
"""
from __future__ import annotations

import logging
import os
import pickle
import random
from typing import Any, Dict, Iterable, Optional

import numpy as np
import torch
from torch import nn

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


def load_file(path: str) -> Dict[str, Any]:
    """``torch.load(weights_only=True)`` on CPU: a file that needs arbitrary unpickling is refused."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint not found: '{path}'")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise pickle.UnpicklingError(
            f"Refusing to load '{path}': it needs full unpickling, which can run arbitrary code "
            f"({str(e).splitlines()[0]}). Convert it with `python tools/model_zoo.py convert`."
        ) from None


class Checkpointer:
    """Saves and restores a model, its optimizer and other checkpointable objects.

    Args:
        output_dir: directory of the checkpoints and of the ``last_checkpoint`` file.
        model: the model (DDP-wrapped or not; it is saved without ``module.``).
        optimizer: optional optimizer.
        save_to_disk: write files (default: main process only; every rank still takes
            part in ``save`` because RNG states are gathered from all ranks).
        **checkpointables: other objects with ``state_dict`` / ``load_state_dict``
            (e.g. a GradScaler), saved under their keyword.

    Examples:
        >>> ckpt = Checkpointer("output", model, optimizer)
        >>> ckpt.save("model_0005000", iteration=5000, hooks={...})
        >>> extra = ckpt.resume_or_load("", resume=True)   # {} when there is nothing to resume
        >>> start_iter = extra.get("iteration", 0)
    """

    def __init__(self, output_dir: str, model: nn.Module, optimizer: Optional[torch.optim.Optimizer] = None,
                 *, save_to_disk: Optional[bool] = None, **checkpointables: Any) -> None:
        self.output_dir = output_dir
        self.model = unwrap_model(model)
        self.checkpointables: Dict[str, Any] = dict(checkpointables)
        if optimizer is not None:
            self.checkpointables["optimizer"] = optimizer
        self.save_to_disk = comm.is_main_process() if save_to_disk is None else save_to_disk

    # ------------------------------------------------------------------ save
    def save(self, name: str, **extra_state: Any) -> Optional[str]:
        """Write ``output_dir/<name>.pth`` atomically and point ``last_checkpoint`` at it.

        Must be called on every rank under DDP (the RNG states are all-gathered).

        Args:
            name: file name without ``.pth``.
            **extra_state: saved as-is (e.g. ``iteration=..., hooks=...``); tensors and
                plain Python values only, so the file stays ``weights_only``-loadable.

        Returns:
            the path written (None on ranks that do not write).
        """
        rng = comm.all_gather(get_rng_state())
        if not self.save_to_disk:
            return None
        data: Dict[str, Any] = {"model": strip_prefixes(self.model.state_dict())}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data["rng"] = rng
        data.update(extra_state)
        os.makedirs(self.output_dir, exist_ok=True)
        path = os.path.join(self.output_dir, f"{name}.pth")
        logger.info(f"Saving checkpoint to {path}")
        atomic_write(path, lambda f: torch.save(data, f))
        self.tag_last_checkpoint(os.path.basename(path))
        return path

    def tag_last_checkpoint(self, basename: str) -> None:
        atomic_write(os.path.join(self.output_dir, "last_checkpoint"), lambda f: f.write(basename.encode()))

    # ------------------------------------------------------------------ query
    def has_checkpoint(self) -> bool:
        """Whether ``output_dir/last_checkpoint`` points at an existing file."""
        path = self.get_checkpoint_file()
        return bool(path) and os.path.isfile(path)

    def get_checkpoint_file(self) -> str:
        """Path of the latest checkpoint ("" if none)."""
        try:
            with open(os.path.join(self.output_dir, "last_checkpoint")) as f:
                name = f.read().strip()
        except OSError:
            return ""
        return os.path.join(self.output_dir, name) if name else ""

    # ------------------------------------------------------------------ load
    def resume_or_load(self, path: str, *, resume: bool = True) -> Dict[str, Any]:
        """Resume everything from the last checkpoint if ``resume`` and one exists;
        else load only the model weights from ``path`` ("" = nothing).

        Returns:
            the entries not consumed (``iteration``, ``hooks``, ...); ``{}`` if nothing loaded.
        """
        if resume and self.has_checkpoint():
            return self.load(self.get_checkpoint_file())
        if resume:
            logger.info(f"No checkpoint found in {self.output_dir}: training from scratch.")
        if not path:
            return {}
        self.load(path, checkpointables=[], strict=False, restore_rng=False)
        return {}

    def load(self, path: str, checkpointables: Optional[Iterable[str]] = None, *, strict: bool = True,
             restore_rng: bool = True) -> Dict[str, Any]:
        """Load ``path`` into the model (and checkpointables); returns the unconsumed entries.

        Args:
            path: a ``.pth`` file (ours, or a raw state dict / {"model": state dict}).
            checkpointables: which of the registered objects to restore (default: all).
            strict: require the model's keys to match exactly (resume); with False,
                missing / unexpected keys are logged (initialisation from other weights).
            restore_rng: restore this rank's RNG states if saved.
        """
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Checkpoint not found: '{path}'")
        logger.info(f"Loading checkpoint from {path}")
        data = load_file(path)
        if "model" not in data:  # a bare state dict
            data = {"model": data}
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
        return data
