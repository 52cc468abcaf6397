"""Converters from upstream checkpoint formats to torchvision-named backbone state dicts.

``CONVERTER_REGISTRY`` maps a format name to ``fn(checkpoint, **options) -> state dict``;
:func:`convert_file` loads a file safely (restricted unpickler for Haiku pickles,
``torch.load(weights_only=True)`` or safetensors otherwise) and converts it.

Formats and their options:

============  ==========================================  =====================================
format        source                                      options
============  ==========================================  =====================================
haiku_byol    DeepMind BYOL ``.pkl`` (dill / Haiku)        ``params="online"|"target"``, ``include_classifier``
moco          MoCo v1/v2 ``.pth.tar``                     ``encoder="q"|"k"``
lightly       lightly (Lightning) ``.ckpt``                ``momentum``
solo_learn    solo-learn ``.ckpt``                         ``momentum``
vissl         VISSL ``.torch``                            -
torchvision   torchvision ``.pth``                        -
timm          timm ``.pth`` / ``.safetensors``             -
ssl_zoo       this project's ``.pth`` / ``.safetensors``   ``target``
============  ==========================================  =====================================
"""
from __future__ import annotations

from typing import Any, Dict

import torch

from ssl_zoo.model_zoo.convert.haiku_byol import haiku_byol_to_state_dict
from ssl_zoo.model_zoo.convert.safe_pickle import UnsafePickleError, safe_load_pickle
from ssl_zoo.model_zoo.convert.torch_formats import (
    UnsafeCheckpointError,
    from_lightly,
    from_moco,
    from_solo_learn,
    from_ssl_zoo,
    from_timm,
    from_torchvision,
    from_vissl,
    load_torch_checkpoint,
)
from ssl_zoo.utils.registry import Registry

CONVERTER_REGISTRY = Registry("CONVERTER")
CONVERTER_REGISTRY.__doc__ = "format name -> fn(loaded checkpoint, **options) -> backbone state dict"
for _name, _fn in {
    "haiku_byol": haiku_byol_to_state_dict,
    "moco": from_moco,
    "lightly": from_lightly,
    "solo_learn": from_solo_learn,
    "vissl": from_vissl,
    "torchvision": from_torchvision,
    "timm": from_timm,
    "ssl_zoo": from_ssl_zoo,
}.items():
    CONVERTER_REGISTRY.register(_fn, name=_name)

PICKLE_FORMATS = ("haiku_byol",)  # read with the restricted unpickler, not torch.load


def load_checkpoint(path: str, fmt: str, *, max_bytes: int = 16 * 2**30) -> Any:
    """Load ``path`` the safe way for format ``fmt`` (no arbitrary code runs)."""
    if fmt in PICKLE_FORMATS:
        return safe_load_pickle(path, max_bytes=max_bytes)
    return load_torch_checkpoint(path, max_bytes=max_bytes)


def detect_format(ckpt: Any) -> str:
    """Best guess of the format of a loaded checkpoint (used by ``--format auto``)."""
    if isinstance(ckpt, dict) and ("experiment_state" in ckpt or "online_params" in ckpt):
        return "haiku_byol"
    if isinstance(ckpt, dict) and "classy_state_dict" in ckpt:
        return "vissl"
    sd = ckpt.get("state_dict", ckpt.get("model", ckpt)) if isinstance(ckpt, dict) else {}
    keys = list(sd) if isinstance(sd, dict) else []
    if any("encoder_q." in k for k in keys):
        return "moco"
    if any(k.startswith("momentum_backbone.") for k in keys):
        return "solo_learn"
    if any(k.startswith("backbone.0.") or k.startswith("backbone_momentum.") for k in keys):
        return "lightly"
    if any(k.startswith("backbone.") for k in keys):
        return "ssl_zoo"
    if any(k.startswith("_feature_blocks.") or k.startswith("trunk.") for k in keys):
        return "vissl"
    return "torchvision"


def convert_checkpoint(ckpt: Any, fmt: str, **options: Any) -> Dict[str, torch.Tensor]:
    """Convert an already loaded checkpoint of format ``fmt`` (see the module table)."""
    return CONVERTER_REGISTRY.get(fmt)(ckpt, **options)


def convert_file(path: str, fmt: str = "auto", **options: Any) -> Dict[str, torch.Tensor]:
    """Load ``path`` safely and convert it; ``fmt="auto"`` guesses (pickles need ``haiku_byol``
    or a ``.pkl`` suffix)."""
    if fmt == "auto":
        fmt = "haiku_byol" if path.endswith(".pkl") else detect_format(load_torch_checkpoint(path))
    return convert_checkpoint(load_checkpoint(path, fmt), fmt, **options)


__all__ = ["CONVERTER_REGISTRY", "UnsafeCheckpointError", "UnsafePickleError", "convert_checkpoint",
           "convert_file", "detect_format", "load_checkpoint", "safe_load_pickle"]
