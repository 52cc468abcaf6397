"""``MODEL.COMPILE``: torch.compile of the method's step, falling back to eager when it cannot compile.

The method's ``forward`` (views -> loss dict) is compiled in place (``model.forward`` is
replaced, so ``state_dict`` keys, hooks and checkpoints are unchanged); autograd compiles the
matching backward (AOTAutograd). Compilation happens lazily on the first call; if it fails
(no C++ compiler for inductor on a CPU, an unsupported op, an old GPU for Triton), one warning
names the reason and the method runs eagerly from then on: a speed option never stops training.
"""
from __future__ import annotations

import functools
import logging
from typing import Callable

import torch
from torch import nn

__all__ = ["compile_method"]

logger = logging.getLogger(__name__)


class _CompiledWithFallback:
    """Calls ``compiled``; on its first failure logs once and uses ``eager`` for good."""

    def __init__(self, eager: Callable, compiled: Callable, backend: str) -> None:
        self.eager, self.compiled, self.backend = eager, compiled, backend
        self.failed = False
        functools.update_wrapper(self, eager)

    def __call__(self, *args, **kwargs):
        if self.failed:
            return self.eager(*args, **kwargs)
        try:
            return self.compiled(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 -- any compiler failure; a real bug re-raises in eager below
            self.failed = True
            logger.warning(f"MODEL.COMPILE: torch.compile(backend={self.backend!r}) failed, running eagerly "
                           f"instead ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
            return self.eager(*args, **kwargs)


def compile_method(model: nn.Module, backend: str = "inductor", mode: str = "default") -> nn.Module:
    """Compile ``model.forward`` in place with an eager fallback; returns ``model``.

    Args:
        model: the method (not yet wrapped in DistributedDataParallel).
        backend: torch.compile backend ("inductor"; "aot_eager" / "eager" for debugging).
        mode: torch.compile mode ("default", "reduce-overhead", "max-autotune").
    """
    eager = model.forward
    try:
        compiled = torch.compile(eager, backend=backend, mode=None if mode == "default" else mode)
    except Exception as e:  # noqa: BLE001 -- e.g. an unknown backend name, or no torch.compile support
        logger.warning(f"MODEL.COMPILE: cannot compile with backend {backend!r} ({type(e).__name__}: {e}); "
                       f"running eagerly.")
        return model
    model.forward = _CompiledWithFallback(eager, compiled, backend)
    logger.info(f"MODEL.COMPILE: the method's forward/backward are compiled with torch.compile(backend={backend!r}) "
                f"on their first call.")
    return model
