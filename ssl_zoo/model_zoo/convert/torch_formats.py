"""PyTorch checkpoints of other SSL libraries -> torchvision-named backbone state dicts.

Every converter takes the loaded checkpoint (``torch.load(..., weights_only=True)`` /
safetensors output) and returns the backbone in torchvision ResNet names without ``fc``:

- ``moco``: MoCo v1/v2 ``*.pth.tar`` = ``{"state_dict": {"module.encoder_q.conv1.weight", ...,
  "module.encoder_k.*", "module.queue", ...}, "arch", "epoch", "optimizer"}`` (facebookresearch/moco
  ``main_moco.py``); ``encoder="q"`` (the query encoder, what MoCo evaluates) or ``"k"`` (momentum).
- ``lightly``: Lightning checkpoints of lightly's examples / benchmarks, whose backbone is
  ``nn.Sequential(*list(resnet.children())[:-1])``: ``state_dict["backbone.0.weight"]`` = ``conv1``,
  ``backbone.1`` = ``bn1``, ``backbone.4..7`` = ``layer1..4``; ``backbone_momentum.*`` is the target.
- ``solo_learn``: ``{"state_dict": {"backbone.conv1.weight", ..., "momentum_backbone.*",
  "projector.*", "classifier.*"}}``.
- ``vissl``: ``{"classy_state_dict": {"base_model": {"model": {"trunk": {"_feature_blocks.conv1.weight",
  ...}, "heads": ...}}}}`` or an extracted trunk dict.
- ``torchvision`` / ``timm``: plain state dicts (timm's ResNets use torchvision's names).
- ``ssl_zoo``: our own checkpoints (``{"model": {"backbone.*", "target_backbone.*", ...}}``), a
  bare backbone state dict, or an exported safetensors file.
"""
from __future__ import annotations

import re
from typing import Any, Dict, Mapping

import torch

from ssl_zoo.checkpoint.checkpointer import strip_prefixes
from ssl_zoo.checkpoint.files import UnsafeCheckpointError, load_file

StateDict = Dict[str, torch.Tensor]


def load_torch_checkpoint(path: str, *, max_bytes: int = 16 * 2**30) -> Any:
    """Load a ``.pth`` / ``.pth.tar`` / ``.ckpt`` / ``.torch`` / ``.safetensors`` file safely
    (``ssl_zoo.checkpoint.files.load_file``: weights-only, no fallback to full unpickling)."""
    return load_file(path, max_bytes=max_bytes)


def _nested(ckpt: Mapping[str, Any], *keys: str) -> Mapping[str, Any]:
    for key in keys:
        if isinstance(ckpt, Mapping) and key in ckpt:
            ckpt = ckpt[key]
    return ckpt


def _select(sd: Mapping[str, Any], prefix: str) -> StateDict:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix) and torch.is_tensor(v)}


def _drop_fc(sd: StateDict) -> StateDict:
    return {k: v for k, v in sd.items() if not k.startswith("fc.")}


def _require(sd: StateDict, fmt: str, hint: str) -> StateDict:
    if "conv1.weight" not in sd:
        raise KeyError(f"no ResNet backbone found for format '{fmt}' ({hint}); "
                       f"first keys: {list(sd)[:8]}")
    return sd


def from_moco(ckpt: Mapping[str, Any], *, encoder: str = "q") -> StateDict:
    """MoCo v1/v2 checkpoint -> backbone (``encoder`` "q" = query, "k" = key/momentum)."""
    if encoder not in ("q", "k"):
        raise ValueError(f"encoder must be 'q' or 'k', got '{encoder}'")
    sd = _nested(ckpt, "state_dict")
    out = _select(strip_prefixes(dict(sd)), f"encoder_{encoder}.")
    return _require(_drop_fc(out), "moco", f"expected 'module.encoder_{encoder}.*' keys")


# torchvision ResNet children order: conv1, bn1, relu, maxpool, layer1..4, avgpool, fc.
_SEQ_INDEX = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}


def from_lightly(ckpt: Mapping[str, Any], *, momentum: bool = False) -> StateDict:
    """lightly (Lightning) checkpoint -> backbone; ``momentum=True`` takes ``backbone_momentum``."""
    sd = strip_prefixes(dict(_nested(ckpt, "state_dict")))
    prefixes = ("backbone_momentum.",) if momentum else ("backbone.",)
    for prefix in prefixes:
        sub = _select(sd, prefix)
        if sub:
            break
    out = {}
    for k, v in sub.items():
        head, _, rest = k.partition(".")
        out[f"{_SEQ_INDEX[head]}.{rest}" if head in _SEQ_INDEX else k] = v
    return _require(_drop_fc(out), "lightly", f"expected '{prefixes[0]}0.weight' or '{prefixes[0]}conv1.weight'")


def from_solo_learn(ckpt: Mapping[str, Any], *, momentum: bool = False) -> StateDict:
    """solo-learn checkpoint -> backbone; ``momentum=True`` takes ``momentum_backbone``."""
    sd = strip_prefixes(dict(_nested(ckpt, "state_dict")))
    prefix = "momentum_backbone." if momentum else "backbone."
    return _require(_drop_fc(_select(sd, prefix)), "solo_learn", f"expected '{prefix}*' keys")


def from_vissl(ckpt: Mapping[str, Any]) -> StateDict:
    """VISSL checkpoint (full or trunk-only) -> backbone."""
    trunk = _nested(ckpt, "classy_state_dict", "base_model", "model", "trunk")
    sd = strip_prefixes(dict(trunk))
    out = {re.sub(r"^(trunk\.)?(base_model\.)?_feature_blocks\.", "", k): v for k, v in sd.items() if torch.is_tensor(v)}
    return _require(_drop_fc(out), "vissl", "expected 'trunk._feature_blocks.*' keys")


def from_torchvision(ckpt: Mapping[str, Any]) -> StateDict:
    """torchvision state dict (maybe under ``state_dict`` / ``model``) -> backbone without ``fc``."""
    sd = strip_prefixes(dict(_nested(ckpt, "state_dict") if "state_dict" in ckpt else _nested(ckpt, "model")))
    return _require(_drop_fc({k: v for k, v in sd.items() if torch.is_tensor(v)}), "torchvision", "plain state dict")


def from_timm(ckpt: Mapping[str, Any]) -> StateDict:
    """timm ResNet state dict (same names as torchvision; ``state_dict_ema`` not used)."""
    return from_torchvision(ckpt)


def from_ssl_zoo(ckpt: Mapping[str, Any], *, target: bool = False) -> StateDict:
    """Our checkpoints: ``{"model": {"backbone.*", "target_backbone.*"}}`` or a bare backbone."""
    sd = strip_prefixes(dict(ckpt.get("model", ckpt)))
    prefix = "target_backbone." if target else "backbone."
    if any(k.startswith(prefix) for k in sd):
        sd = _select(sd, prefix)
    elif target:
        raise KeyError("this ssl_zoo checkpoint has no 'target_backbone.*' keys")
    return _require(_drop_fc({k: v for k, v in sd.items() if torch.is_tensor(v)}), "ssl_zoo", "")


__all__ = ["UnsafeCheckpointError", "from_lightly", "from_moco", "from_solo_learn", "from_ssl_zoo",
           "from_timm", "from_torchvision", "from_vissl", "load_torch_checkpoint"]
