"""Process environment: seeding, device selection, environment report."""
from __future__ import annotations

import os
import random
import sys
from datetime import datetime

import numpy as np
import torch

from ssl_zoo.utils import comm


def seed_all(seed: int, *, offset_by_rank: bool = True) -> int:
    """Seed python, numpy and torch (CPU and every CUDA device).

    Args:
        seed: the base seed; a negative value draws one from time and pid (logged by
            the caller so the run can be repeated).
        offset_by_rank: add the process rank, so that processes do not draw identical
            random streams (data order / augmentation use their own (seed, iteration)
            generators and are unaffected).

    Returns:
        the base seed actually used.
    """
    if seed < 0:
        seed = (os.getpid() + int(datetime.now().strftime("%S%f")) + int.from_bytes(os.urandom(2), "big")) % (2**31)
    s = seed + (comm.get_rank() if offset_by_rank else 0)
    random.seed(s)
    np.random.seed(s % (2**32))
    torch.manual_seed(s)  # also seeds every CUDA device
    os.environ["PYTHONHASHSEED"] = str(s)  # only affects subprocesses started later
    return seed


def get_device(name: str = "auto") -> torch.device:
    """Training device of this process.

    Args:
        name: ``"auto"`` (this process's GPU ``cuda:LOCAL_RANK`` if CUDA is available,
            else CPU), ``"cpu"``, ``"cuda"`` (= ``cuda:LOCAL_RANK``) or ``"cuda:N"``.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", comm.get_local_rank())
    return torch.device(name)


def device_from_cfg(cfg) -> torch.device:
    """``get_device(cfg.DEVICE)``."""
    return get_device(cfg.DEVICE)


def collect_env_info() -> str:
    """A short multi-line report of versions and devices (for the start of log.txt)."""
    lines = [
        f"python: {sys.version.split()[0]}",
        f"numpy: {np.__version__}",
        f"torch: {torch.__version__} (cuda {torch.version.cuda}, cudnn "
        f"{torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None})",
    ]
    try:
        import torchvision

        lines.append(f"torchvision: {torchvision.__version__}")
    except ImportError:  # pragma: no cover
        pass
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            lines.append(f"GPU {i}: {torch.cuda.get_device_name(i)}")
    else:
        lines.append(f"GPU: none (CPU threads: {torch.get_num_threads()})")
    lines.append(f"world size: {comm.get_world_size()}")
    return "\n".join(lines)
