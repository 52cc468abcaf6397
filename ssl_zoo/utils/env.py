"""Process environment: seeding, device and precision selection, environment report."""
from __future__ import annotations

import logging
import os
import platform
import random
import sys
from datetime import datetime
from typing import Optional

import numpy as np
import torch

from ssl_zoo.utils import comm

logger = logging.getLogger(__name__)


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


def amp_dtype_from_cfg(cfg, device: Optional[torch.device] = None) -> Optional[torch.dtype]:
    """Autocast dtype of SOLVER.AMP (None = fp32); bf16 falls back to fp32 on CPUs without native bf16.

    AMP applies only on the device types in SOLVER.AMP.DEVICES (the ImageNet configs: CUDA only).
    """
    if not cfg.SOLVER.AMP.ENABLED:
        return None
    if device is not None and device.type not in tuple(cfg.SOLVER.AMP.DEVICES):
        return None
    dtypes = {"bfloat16": torch.bfloat16, "float16": torch.float16}
    if cfg.SOLVER.AMP.DTYPE not in dtypes:
        raise ValueError(f"SOLVER.AMP.DTYPE must be one of {sorted(dtypes)}, got '{cfg.SOLVER.AMP.DTYPE}'")
    dtype = dtypes[cfg.SOLVER.AMP.DTYPE]
    if device is not None and device.type == "cpu" and dtype == torch.bfloat16 and not _cpu_has_bf16():
        # Without native bf16 (AVX-512 BF16 / AMX) oneDNN emulates it, which is slower than fp32.
        logger.warning("SOLVER.AMP: this CPU has no native bfloat16 support; training in float32 instead.")
        return None
    return dtype


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows: benchmarks print the
    machine they ran on, since the CPU changes between sessions."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine() or "unknown CPU"


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
