"""The contract every SSL method (``methods/<name>.py``) fulfils, and its registry.

A method is an ``nn.Module`` that owns all of its networks (online / target / heads)
and computes its loss from a list of augmented views::

    @METHOD_REGISTRY.register()
    class BYOL(SSLMethod):
        @classmethod
        def add_config(cls, cfg): ...          # declares cfg.BYOL.* with defaults
        @classmethod
        def from_config(cls, cfg) -> dict: ... # constructor kwargs from cfg
        @classmethod
        def lr_rules(cls, cfg) -> list: ...    # per-parameter lr rules (solver.build.LRRule)
        def forward(self, views, labels=None) -> dict: ...  # {"loss": ..., scalars}
        def after_step(self, step, max_steps) -> dict: ...  # e.g. the EMA target update

The trainer never branches on the method's name: everything method-specific is
declared here (config keys, lr rules, the after-step update) or returned by ``forward``.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
from torch import nn

from ssl_zoo.utils.registry import Registry

METHOD_REGISTRY = Registry("METHOD", entry_point_group="ssl_zoo.methods")
METHOD_REGISTRY.__doc__ = ("SSL methods: classes deriving from SSLMethod, registered by their class name; the modules "
                           "of the 'ssl_zoo.methods' entry-point group are imported on first lookup.")


class SSLMethod(nn.Module):
    """Base class of SSL methods.

    Attributes:
        backbone: the online encoder whose representation is evaluated (kNN, linear,
            export); maps images ``[B, 3, H, W]`` to features ``[B, D]``.
    """

    backbone: nn.Module

    @classmethod
    def add_config(cls, cfg) -> None:
        """Declare this method's own config node (e.g. ``cfg.BYOL``) with commented defaults."""

    @classmethod
    def from_config(cls, cfg) -> dict:
        """Constructor keyword arguments read from ``cfg``."""
        raise NotImplementedError

    def forward(self, views: List[torch.Tensor], labels: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Compute the training loss.

        Args:
            views: augmented, normalised views, each ``[B, 3, H, W]`` (same images, same order).
            labels: ``[B]`` class labels when the dataset has them (only for
                monitoring heads trained on detached features), else None.

        Returns:
            dict with ``"loss"`` (scalar to back-propagate) and other 0-dim tensors to log.
            The optional key ``"embedding"`` (``[B, d]``, detached) feeds the collapse monitor.
        """
        raise NotImplementedError

    @classmethod
    def lr_rules(cls, cfg) -> list:
        """Per-parameter lr rules from the config (``ssl_zoo.solver.build.LRRule``; none by default)."""
        return []

    def on_backbone_loaded(self) -> None:
        """Called after ``backbone``'s weights were replaced (``MODEL.WEIGHTS`` warm start).

        Methods that keep a copy of the backbone (BYOL's target, MoCo's key encoder) re-copy
        it here, so that the copy starts from the loaded weights as the online network does.
        """

    def after_step(self, step: int, max_steps: int) -> Dict[str, float]:
        """Called by the trainer after every optimizer step ``step`` (0-based) of ``max_steps``
        (e.g. BYOL's EMA target update, PROTOCOLS.md s.2); returns scalars to log."""
        return {}


def build_method(cfg) -> SSLMethod:
    """Instantiate ``cfg.MODEL.METHOD`` from the registry."""
    cls = METHOD_REGISTRY.get(cfg.MODEL.METHOD)
    return cls(**cls.from_config(cfg))
