"""DeepMind BYOL checkpoints (Haiku, ``dill`` pickle) -> torchvision-named ResNet state dict.

Upstream layout (deepmind-research ``byol/``: ``utils/checkpointing.py`` dumps
``dict(experiment_state=..., step=..., rng=...)`` with dill, protocol 2;
``byol_experiment._ByolExperimentState`` is a NamedTuple of ``online_params``,
``target_params``, ``online_state``, ``target_state``, ``opt_state``). Params and state are
two-level mappings ``{module path: {leaf: array}}`` in NHWC / HWIO layout:

============================================================  ==========================================
Haiku module (leaf)                                            PyTorch (torchvision ResNet)
============================================================  ==========================================
``<enc>/~/initial_conv[_1]`` (``w`` [kh, kw, in, out])          ``conv1.weight`` [out, in, kh, kw]
``<enc>/~/initial_batchnorm[_1]`` (``scale``/``offset`` [1,1,1,C]) ``bn1.weight`` / ``bn1.bias`` [C]
``.../block_group_g/~/block_b/~/conv_i``                        ``layer{g+1}.{b}.conv{i+1}.weight``
``.../block_group_g/~/block_b/~/batchnorm_i``                   ``layer{g+1}.{b}.bn{i+1}.*``
``.../shortcut_conv`` / ``.../shortcut_batchnorm``              ``layer{g+1}.{b}.downsample.0`` / ``.1``
state ``<bn>/~/mean_ema`` / ``<bn>/~/var_ema`` (``average``)     ``<bn>.running_mean`` / ``running_var``
``classifier`` (``w`` [in, out], ``b``)                         ``fc.weight`` [out, in], ``fc.bias`` (optional)
============================================================  ==========================================

``<enc>`` is the encoder's Haiku name (``res_net50``, ``res_net200``, ...); the ``_1``
suffix appears in the released files because BYOL's ``ResNetTorso`` re-creates the stem.
``projector`` / ``predictor`` are not part of the backbone and are skipped. The Haiku
ResNet v1 puts the stride on the 3x3 convolution of a bottleneck, as torchvision does,
but pads "SAME" the TF way: run the result in a backbone converted with
:func:`ssl_zoo.modeling.backbones.tf_same_padding.convert_to_tf_same_padding_`.
"""
from __future__ import annotations

import re
from typing import Any, Dict, Mapping

import numpy as np
import torch

_SKIP_TOP = ("projector", "predictor")
_BLOCK = re.compile(r"block_group_(\d+)/~/block_(\d+)/~/(conv|batchnorm|shortcut_conv|shortcut_batchnorm)(?:_(\d+))?$")
_STEM = re.compile(r"initial_(conv|batchnorm)(?:_\d+)?$")


def _torch_module_name(path: str) -> str:
    """Map a Haiku encoder module path (without ``<enc>/~/``) to a torchvision module name."""
    m = _STEM.fullmatch(path)
    if m:
        return "conv1" if m.group(1) == "conv" else "bn1"
    m = _BLOCK.search(path)
    if m:
        group, block, kind, idx = int(m.group(1)), int(m.group(2)), m.group(3), m.group(4)
        prefix = f"layer{group + 1}.{block}"
        if kind == "shortcut_conv":
            return f"{prefix}.downsample.0"
        if kind == "shortcut_batchnorm":
            return f"{prefix}.downsample.1"
        return f"{prefix}.{'conv' if kind == 'conv' else 'bn'}{int(idx) + 1}"
    raise KeyError(f"unrecognised Haiku ResNet module '{path}'")


def _split_encoder(path: str):
    """('res_net50', 'block_group_0/~/...') for an encoder path; (top, None) for others."""
    top, sep, rest = path.partition("/~/")
    return top, (rest if sep else None)


def _tensor(a: Any) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(a, dtype=np.float32)))


def _experiment_state(data: Mapping[str, Any]) -> Mapping[str, Any]:
    if "experiment_state" in data:
        return data["experiment_state"]
    if "online_params" in data:
        return data
    raise KeyError("not a BYOL checkpoint: expected 'experiment_state' or 'online_params', "
                   f"found keys {sorted(data)[:10]}")


def haiku_byol_to_state_dict(data: Mapping[str, Any], *, params: str = "online",
                             include_classifier: bool = False) -> Dict[str, torch.Tensor]:
    """Convert an unpickled BYOL checkpoint (plain dicts, see ``safe_pickle``) to a state dict.

    Args:
        data: ``{"experiment_state": {...}, ...}`` or the experiment state itself.
        params: ``"online"`` (the encoder BYOL evaluates, default) or ``"target"`` (the EMA).
        include_classifier: also convert the online linear classifier BYOL trains on the
            stop-gradient embedding (``fc.*``; monitoring head, not a tuned linear probe).

    Returns:
        torchvision ResNet names (``conv1.weight``, ``layer1.0.bn1.running_mean``, ...),
        float32, with ``num_batches_tracked`` = 0 for every BN; no ``fc`` unless asked.
    """
    if params not in ("online", "target"):
        raise ValueError(f"params must be 'online' or 'target', got '{params}'")
    es = _experiment_state(data)
    weights, state = es[f"{params}_params"], es[f"{params}_state"]
    out: Dict[str, torch.Tensor] = {}
    for path, leaves in weights.items():
        top, rest = _split_encoder(path)
        if top in _SKIP_TOP:
            continue
        if top == "classifier":
            if include_classifier:
                out["fc.weight"] = _tensor(leaves["w"]).t().contiguous()
                out["fc.bias"] = _tensor(leaves["b"])
            continue
        name = _torch_module_name(rest if rest is not None else top)
        if "w" in leaves:  # HWIO -> OIHW
            out[f"{name}.weight"] = _tensor(leaves["w"]).permute(3, 2, 0, 1).contiguous()
        if "scale" in leaves:
            out[f"{name}.weight"] = _tensor(leaves["scale"]).reshape(-1)
        if "offset" in leaves:
            out[f"{name}.bias"] = _tensor(leaves["offset"]).reshape(-1)
        if "scale" in leaves or "offset" in leaves:
            out[f"{name}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    for path, leaves in state.items():
        top, rest = _split_encoder(path)
        if top in _SKIP_TOP or rest is None:
            continue
        bn_path, _, stat = rest.rpartition("/~/")
        if stat not in ("mean_ema", "var_ema"):
            continue
        buffer = "running_mean" if stat == "mean_ema" else "running_var"
        # Haiku's EMA keeps `hidden` and `average`; without zero-debiasing they are equal,
        # and `average` is what BatchNorm reads at test time.
        out[f"{_torch_module_name(bn_path)}.{buffer}"] = _tensor(leaves["average"]).reshape(-1)
    for key in [k for k in out if k.endswith(".num_batches_tracked")]:
        bn = key[: -len(".num_batches_tracked")]
        if f"{bn}.running_mean" not in out or f"{bn}.running_var" not in out:
            raise KeyError(f"BYOL checkpoint has no moving statistics for '{bn}' in {params}_state")
    return out


__all__ = ["haiku_byol_to_state_dict"]
