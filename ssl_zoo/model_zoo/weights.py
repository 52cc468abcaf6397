"""Backbone weights from wherever they come: the one loader behind ``tools/benchmark.py --weights``
and ``tools/train_net.py``'s ``MODEL.WEIGHTS`` (warm starts).

Accepted sources (:func:`load_weights`):

* ``random`` (or ``""``): no weights, the backbone's random initialisation (a baseline row).
* a model-zoo name (``python tools/model_zoo.py list``): downloaded, verified, converted.
* ``torchvision:<arch>`` (its DEFAULT weights) or ``torchvision:<Enum>.<NAME>``
  (e.g. ``torchvision:ResNet50_Weights.IMAGENET1K_V2``): downloaded by torchvision.
* ``timm:<model name>`` (e.g. ``timm:resnet50.a1_in1k``): downloaded by timm.
* a file: a ``tools/train_net.py`` checkpoint (``{"model": ...}``), a plain state dict, or
  another framework's checkpoint (``{"state_dict": ...}``, ``{"model": ...}``, ...).

Foreign checkpoints name the backbone with a prefix (``module.``, ``backbone.``,
``module.encoder_q.``, ``online_network.encoder.``, ...). :func:`match_backbone_state`
finds the prefix that maps the most keys onto the backbone (preferring online / query
networks over target / key / momentum / teacher copies, which match equally well), and
refuses weights that leave any backbone tensor uninitialised or have a wrong shape: a
silently random layer in an evaluation is a wrong number, not a warning.
"""
from __future__ import annotations

import logging
import os
import re
from typing import Dict, List, Optional, Tuple

import timm
import torch
from torch import nn
from torchvision import models

from ssl_zoo.checkpoint.checkpointer import load_file, strip_prefixes
from ssl_zoo.model_zoo import get_state_dict, list_models

logger = logging.getLogger(__name__)

__all__ = ["load_weights", "match_backbone_state", "load_backbone_weights", "RANDOM_INIT"]

RANDOM_INIT = "random"
# A prefix containing one of these names belongs to a copy of the network that is not the
# one to evaluate (BYOL's target, MoCo's key encoder, DINO's teacher, EMA copies).
_SECONDARY = re.compile(r"(^|[._])(target|momentum|encoder_k|key|teacher|ema|mean_teacher)([._]|$)")
# Containers other frameworks put the state dict in.
_CONTAINERS = ("model", "state_dict", "model_state", "model_state_dict", "network", "net", "online_network")


def _unwrap_container(data) -> Dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint (``{"model": ...}``, ``{"state_dict": ...}``, or bare)."""
    seen = set()  # a crafted file may nest a dict inside itself: never visit one twice
    while isinstance(data, dict):
        if id(data) in seen or len(seen) >= 16:
            raise ValueError(f"the checkpoint's containers {_CONTAINERS} nest in a cycle or more than 16 deep; "
                             f"it is damaged or crafted")
        seen.add(id(data))
        tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
        if tensors and len(tensors) >= len(data) / 2:
            return tensors
        inner = next((data[k] for k in _CONTAINERS if isinstance(data.get(k), dict)), None)
        if inner is None:
            break
        data = inner
    keys = list(data)[:10] if isinstance(data, dict) else type(data).__name__
    raise ValueError(f"no state dict found in the checkpoint (top-level keys: {keys}); expected a dict of "
                     f"tensors or one inside {_CONTAINERS}")


def load_weights(spec: str) -> Tuple[Optional[Dict[str, torch.Tensor]], str]:
    """Read ``--weights``: ``(state dict or None for random init, description)``.

    Raises:
        FileNotFoundError: ``spec`` is neither a file, a zoo name nor a ``torchvision:`` /
            ``timm:`` name (the message lists what was tried).
    """
    spec = (spec or "").strip()
    if spec in ("", RANDOM_INIT, "none"):
        return None, "random init"
    if spec.startswith("torchvision:"):
        return _torchvision_weights(spec[len("torchvision:"):]), spec
    if spec.startswith("timm:"):
        model = timm.create_model(spec[len("timm:"):], pretrained=True, num_classes=0)
        return model.state_dict(), spec
    if os.path.isfile(spec):
        return _unwrap_container(load_file(spec)), os.path.abspath(spec)
    if spec in list_models():
        return get_state_dict(spec), f"model zoo '{spec}'"
    raise FileNotFoundError(
        f"--weights '{spec}' is not a file ({os.path.abspath(spec)}), not a model-zoo name "
        f"(`python tools/model_zoo.py list`), and has no 'torchvision:' / 'timm:' prefix; "
        f"use '{RANDOM_INIT}' for a randomly initialised backbone.")


def _torchvision_weights(name: str) -> Dict[str, torch.Tensor]:
    """``resnet50`` (DEFAULT weights) or ``ResNet50_Weights.IMAGENET1K_V2`` -> state dict."""
    try:
        weights = models.get_weight(name) if "." in name else models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError, AttributeError) as e:
        raise ValueError(f"torchvision has no weights '{name}' ({e}); e.g. 'torchvision:resnet50' or "
                         f"'torchvision:ResNet50_Weights.IMAGENET1K_V2'") from None
    return weights.get_state_dict(progress=True)


def _candidate_prefixes(keys: List[str], max_depth: int = 4) -> List[str]:
    out = {""}
    for k in keys:
        parts = k.split(".")
        for d in range(1, min(max_depth, len(parts) - 1) + 1):
            out.add(".".join(parts[:d]) + ".")
    return sorted(out)


def match_backbone_state(state: Dict[str, torch.Tensor], model: nn.Module,
                         source: str = "checkpoint") -> Tuple[Dict[str, torch.Tensor], str]:
    """The part of ``state`` that is ``model``'s backbone, with the prefix removed.

    Args:
        state: any state dict (``module.`` / ``_orig_mod.`` already tolerated).
        model: the backbone to fill.
        source: named in error messages.

    Returns:
        ``(backbone state dict with exactly the model's keys, prefix used)``.

    Raises:
        ValueError: no prefix covers every backbone tensor (``num_batches_tracked`` may be
            missing), or a tensor has the wrong shape; the message names the keys.
    """
    state = strip_prefixes(state)
    target = {k: v.shape for k, v in model.state_dict().items()}
    needed = [k for k in target if not k.endswith("num_batches_tracked")]
    best: Tuple[Tuple[int, int, int], str] = ((-1, 0, 0), "")
    for prefix in _candidate_prefixes(list(state)):
        hits = sum(1 for k in state if k.startswith(prefix) and k[len(prefix):] in target)
        rank = (hits, 0 if _SECONDARY.search(prefix) else 1, -len(prefix))
        if rank > best[0]:
            best = (rank, prefix)
    prefix = best[1]
    picked = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and k[len(prefix):] in target}
    missing = [k for k in needed if k not in picked]
    if missing:
        raise ValueError(
            f"{source}: the weights do not cover the backbone ({len(missing)} of {len(needed)} tensors missing, "
            f"e.g. {missing[:5]}); best prefix found '{prefix}' matched {len(picked)} tensors. First keys of the "
            f"checkpoint: {list(state)[:6]}. Does MODEL.BACKBONE.* match the checkpoint's architecture?")
    wrong = [f"{k}: checkpoint {tuple(v.shape)} vs backbone {tuple(target[k])}"
             for k, v in picked.items() if tuple(v.shape) != tuple(target[k])]
    if wrong:
        raise ValueError(f"{source}: shape mismatch for {len(wrong)} tensors, e.g. {wrong[:3]} (prefix '{prefix}'); "
                         f"check MODEL.BACKBONE.{{NAME, WIDTH, BASE_WIDTH, CIFAR_STEM}}.")
    return picked, prefix


def load_backbone_weights(model: nn.Module, spec: str) -> str:
    """Fill ``model`` (a backbone) from ``spec`` (see :func:`load_weights`); returns a description for reports.

    Raises:
        ValueError: the weights leave a backbone tensor uninitialised or mis-shaped.
    """
    state, description = load_weights(spec)
    if state is None:
        logger.info("Backbone left at its random initialisation (weights: random)")
        return description
    picked, prefix = match_backbone_state(state, model, source=description)
    model.load_state_dict(picked, strict=False)  # only num_batches_tracked may be absent
    logger.info(f"Loaded {len(picked)} backbone tensors from {description} (prefix '{prefix}' removed)")
    return description
