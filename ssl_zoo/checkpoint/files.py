"""Reading and writing checkpoint files safely: no full unpickling, atomic writes, clear errors.

- :func:`load_file`: ``torch.load(weights_only=True)`` on CPU. An empty file, a torn or
  damaged one and a file that would need full unpickling (it names code to run) each give
  a different one-line error naming the file and what to do.
- :func:`save_file`: ``torch.save`` through ``atomic_write``; a full disk becomes a
  :class:`DiskFullError` that says nothing was lost (the previous file is untouched).
- :func:`list_checkpoints`: the ``model_<iteration>.pth`` / ``model_final.pth`` files of a
  directory, oldest first; :func:`remove_orphan_tmp`: temp files of killed writes.
"""
from __future__ import annotations

import errno
import logging
import os
import pickle
import re
from typing import Any, Dict, List

import safetensors.torch
import torch

from ssl_zoo.utils.file_io import atomic_write

logger = logging.getLogger(__name__)

_PERIODIC = re.compile(r"^model_(\d+)\.pth$")
_TMP = re.compile(r"^\..+\.[A-Za-z0-9_]+\.tmp$")  # atomic_write's ".<name>.<random>.tmp"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (empty, damaged, not a checkpoint)."""


class UnsafeCheckpointError(pickle.UnpicklingError, ValueError):
    """The file would need full unpickling, which can run arbitrary code."""


class DiskFullError(OSError):
    """A write failed for lack of space; the previous files are intact."""


def load_file(path: str, *, max_bytes: int = 64 * 2**30) -> Dict[str, Any]:
    """Read a checkpoint safely on CPU: ``.safetensors`` with safetensors, anything else with
    ``torch.load(weights_only=True)`` (tensors, primitive types and plain containers only; never
    a fallback to full unpickling). The one reader of checkpoint and weight files.

    Args:
        path: the file.
        max_bytes: refuse larger files (a crafted or wrong file must not exhaust memory).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: empty (a write that never finished), too large, or damaged / not a torch file.
        UnsafeCheckpointError: it names a global outside torch's weights-only allow-list.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint not found: '{path}'")
    size = os.path.getsize(path)
    if size == 0:
        raise CheckpointError(f"checkpoint '{path}' is empty (0 bytes): its write never finished (killed or out of "
                              f"space). Delete it; `--resume` uses the newest complete checkpoint.")
    if size > max_bytes:
        raise CheckpointError(f"checkpoint '{path}' has {size} bytes, more than the limit of {max_bytes}")
    with open(path, "rb") as f:
        head = f.read(16)
    # safetensors: 8-byte little-endian header length, then a JSON header starting with "{"
    if path.endswith(".safetensors") or (len(head) >= 9 and head[8:9] == b"{" and not head.startswith(b"PK")):
        try:
            return safetensors.torch.load_file(path, device="cpu")
        except Exception as e:  # noqa: BLE001 - any parse failure is a damaged file
            raise CheckpointError(f"checkpoint '{path}' is not a readable safetensors file "
                                  f"({type(e).__name__}: {_first_detail(str(e))}).") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "GLOBAL" in msg:  # torch's weights-only unpickler names the refused global
            detail = next((line.strip() for line in msg.splitlines() if "GLOBAL" in line), "")
            raise UnsafeCheckpointError(
                f"Refusing to load '{path}': it needs full unpickling, which can run arbitrary code ({detail}). "
                f"If you trust the file, re-save its tensors as a plain state dict or safetensors; "
                f"`python tools/model_zoo.py convert` handles the known foreign formats.") from None
        raise CheckpointError(f"checkpoint '{path}' is damaged or not a PyTorch file "
                              f"({_first_detail(msg)}).") from None
    except (RuntimeError, EOFError, OSError, ValueError, MemoryError, RecursionError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise CheckpointError(f"checkpoint '{path}' is damaged or truncated ({type(e).__name__}: "
                              f"{_first_detail(str(e))}). Delete it or use another checkpoint.") from None


def _first_detail(msg: str) -> str:
    lines = [line.strip() for line in msg.splitlines() if line.strip()]
    useful = [line for line in lines if "Weights only load failed" not in line and "documentation" not in line
              and "file an issue" not in line]
    return (useful or lines or ["no detail"])[0][:200]


def save_file(data: Dict[str, Any], path: str) -> None:
    """``torch.save(data)`` to ``path`` atomically (temp file + rename).

    Raises:
        DiskFullError: ENOSPC / EDQUOT; ``path`` (if it existed) and every other file are intact.
    """
    try:
        atomic_write(path, lambda f: torch.save(data, f))
    except (OSError, RuntimeError) as e:  # torch's zip writer wraps the OSError in a RuntimeError
        if _is_disk_full(e):
            raise DiskFullError(errno.ENOSPC, f"no space left on the device while writing '{path}': nothing was "
                                f"lost (the previous checkpoint and last_checkpoint are intact). Free space in "
                                f"'{os.path.dirname(path) or '.'}' and rerun with --resume.") from None
        raise


def _is_disk_full(e: BaseException) -> bool:
    while e is not None:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(e) or "file write failed" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def checkpoint_iteration(name: str) -> int:
    """Iteration in a ``model_0000100.pth`` name; -1 for other names (``model_final.pth``)."""
    m = _PERIODIC.match(os.path.basename(name))
    return int(m.group(1)) if m else -1


def list_checkpoints(directory: str) -> List[str]:
    """``model_<n>.pth`` files of ``directory`` by iteration, then ``model_final.pth`` (paths)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    periodic = sorted((n for n in names if _PERIODIC.match(n)), key=checkpoint_iteration)
    final = ["model_final.pth"] if "model_final.pth" in names else []
    return [os.path.join(directory, n) for n in periodic + final]


def remove_orphan_tmp(directory: str) -> List[str]:
    """Delete ``.<name>.<random>.tmp`` files left by writes that were killed; returns their paths.

    Call only while holding the run directory's lock (a live writer's temp file looks the same).
    """
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for n in names:
        if _TMP.match(n):
            path = os.path.join(directory, n)
            try:
                os.remove(path)
                removed.append(path)
            except OSError:
                pass
    if removed:
        logger.info(f"Removed {len(removed)} temp file(s) of interrupted writes: {removed}")
    return removed


__all__ = ["CheckpointError", "DiskFullError", "UnsafeCheckpointError", "checkpoint_iteration", "list_checkpoints",
           "load_file", "remove_orphan_tmp", "save_file"]
