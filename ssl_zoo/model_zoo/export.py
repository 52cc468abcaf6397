"""Export a backbone state dict to torchvision, timm, safetensors and detectron2 files.

All three write torchvision ResNet names (timm's ResNets use the same names), atomically
(temporary file + rename). A backbone whose weights expect TF "SAME" padding (the DeepMind
BYOL conversions) still exports, with a warning: stock torchvision / timm ResNets pad
symmetrically, which changes the outputs (about 4.6 ImageNet points for BYOL R50, issue 6);
the safetensors metadata records ``padding`` so ``ssl_zoo.model_zoo`` can restore it.
"""
from __future__ import annotations

import logging
import pickle
import re
from typing import Dict, List, Optional, Tuple

import timm
import torch
import torchvision

from ssl_zoo.utils.file_io import atomic_write

logger = logging.getLogger(__name__)
StateDict = Dict[str, torch.Tensor]


def _warn_padding(padding: str, target: str) -> None:
    if padding == "tf_same":
        logger.warning(f"these weights were trained with TF 'SAME' padding; a stock {target} ResNet pads "
                       "symmetrically and will not reproduce their accuracy. Use "
                       "ssl_zoo.modeling.backbones.tf_same_padding.convert_to_tf_same_padding_(model).")


def _contiguous(sd: StateDict) -> StateDict:
    return {k: v.detach().cpu().contiguous() for k, v in sd.items()}


def check_torchvision_compatible(state_dict: StateDict, arch: str) -> Tuple[List[str], List[str]]:
    """(missing, unexpected) keys of ``state_dict`` against ``torchvision.models.<arch>()``,
    ``fc`` excluded; shape mismatches count as unexpected. ``arch`` e.g. ``"resnet50"``."""
    ref = {k: v for k, v in getattr(torchvision.models, arch)().state_dict().items() if not k.startswith("fc.")}
    missing = [k for k in ref if k not in state_dict]
    unexpected = [k for k, v in state_dict.items() if not k.startswith("fc.") and
                  (k not in ref or tuple(ref[k].shape) != tuple(v.shape))]
    return missing, unexpected


def export_torchvision(state_dict: StateDict, path: str, *, arch: Optional[str] = None,
                       padding: str = "torch") -> str:
    """Save a plain ``torch.save`` state dict loadable by ``torchvision.models.<arch>()``
    (``load_state_dict(sd, strict=False)`` when it has no ``fc``). With ``arch`` the keys and
    shapes are checked first (a width-multiplied ResNet is not a torchvision model)."""
    if arch is not None:
        missing, unexpected = check_torchvision_compatible(state_dict, arch)
        if missing or unexpected:
            raise ValueError(f"not a torchvision {arch}: missing {missing[:5]}, unexpected/mis-shaped {unexpected[:5]}")
    _warn_padding(padding, "torchvision")
    sd = _contiguous(state_dict)
    atomic_write(path, lambda f: torch.save(sd, f))
    return path


def export_timm(state_dict: StateDict, path: str, *, arch: str, padding: str = "torch") -> str:
    """Save for ``timm.create_model(arch, pretrained_cfg_overlay=dict(file=path))``; the state
    dict is checked by loading it (strictly, ``fc`` aside) into ``timm.create_model(arch)``.
    ``.safetensors`` paths are written as safetensors, others with ``torch.save``."""
    model = timm.create_model(arch, pretrained=False, num_classes=0)
    result = model.load_state_dict({k: v for k, v in state_dict.items() if not k.startswith("fc.")}, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"not a timm {arch}: missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}")
    _warn_padding(padding, "timm")
    if path.endswith(".safetensors"):
        return export_safetensors(state_dict, path, metadata={"arch": arch, "padding": padding, "format": "timm"})
    sd = _contiguous(state_dict)
    atomic_write(path, lambda f: torch.save(sd, f))
    return path


def export_safetensors(state_dict: StateDict, path: str, *, metadata: Optional[Dict[str, str]] = None) -> str:
    """Save as safetensors (no pickle at all) with string ``metadata`` (e.g. arch, padding)."""
    from safetensors.torch import save

    data = save(_contiguous(state_dict), metadata={k: str(v) for k, v in (metadata or {}).items()})
    atomic_write(path, lambda f: f.write(data))
    return path


def read_safetensors_metadata(path: str) -> Dict[str, str]:
    """The string metadata of a safetensors file (``{}`` if none)."""
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        return dict(f.metadata() or {})


def detectron2_key(key: str) -> str:
    """torchvision ResNet name -> detectron2 ResNet name, by the renaming rules of MoCo's
    ``detection/convert-pretrain-to-detectron2.py`` (moco@132aea9): stem keys (no ``layer``) get
    ``stem.``; ``layerN`` -> ``res{N+1}``; ``bnK`` -> ``convK.norm``; ``downsample.0`` ->
    ``shortcut``; ``downsample.1`` -> ``shortcut.norm``."""
    if "layer" not in key:
        key = "stem." + key
    key = re.sub(r"layer([1-4])", lambda m: f"res{int(m.group(1)) + 1}", key)
    key = re.sub(r"bn([1-3])", r"conv\1.norm", key)
    return key.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm")


def export_detectron2(state_dict: StateDict, path: str, *, padding: str = "torch") -> str:
    """Pickle ``{"model": {detectron2 name: numpy array}, "__author__", "matching_heuristics": True}``,
    the file MoCo's converter writes, for detectron2's ``MODEL.WEIGHTS`` (its R50-C4 configs use
    ``RESNETS.STRIDE_IN_1X1 False`` and RGB input for these torchvision-style weights)."""
    _warn_padding(padding, "detectron2")
    model = {detectron2_key(k): v.numpy() for k, v in _contiguous(state_dict).items() if not k.startswith("fc.")}
    data = pickle.dumps({"model": model, "__author__": "ssl_zoo", "matching_heuristics": True})
    atomic_write(path, lambda f: f.write(data))
    return path


__all__ = ["check_torchvision_compatible", "detectron2_key", "export_detectron2", "export_safetensors", "export_timm",
           "export_torchvision", "read_safetensors_metadata"]
