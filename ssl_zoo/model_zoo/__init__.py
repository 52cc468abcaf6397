"""Pretrained backbones: catalog, verified downloads, converters, exporters.

Examples:
    >>> import ssl_zoo.model_zoo as zoo
    >>> zoo.list_models()                        # names in model_zoo/catalog.yaml
    >>> model = zoo.get("byol_r50_1x_1000ep")   # DeepMind's BYOL R50, TF-SAME padding, weights loaded
    >>> y = model.eval()(images)                # [B, 3, 224, 224] -> [B, 2048]

Environment: ``SSL_ZOO_CACHE`` (cache directory), ``SSL_ZOO_OFFLINE=1`` (cache only),
``SSL_ZOO_BASE_URL`` (where this project's own checkpoints live), ``SSL_ZOO_MAX_DOWNLOAD_BYTES``,
``SSL_ZOO_CATALOG`` (another catalog file).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Dict, List, Optional

import torch
from torch import nn

from ssl_zoo.model_zoo.catalog import CatalogEntry, download_entry, get_entry, load_catalog, render_markdown
from ssl_zoo.model_zoo.convert import CONVERTER_REGISTRY, convert_checkpoint, convert_file, load_checkpoint
from ssl_zoo.model_zoo.download import PathManager
from ssl_zoo.model_zoo.export import export_safetensors, export_timm, export_torchvision
from ssl_zoo.modeling.backbones import build_backbone
from ssl_zoo.modeling.backbones.tf_same_padding import convert_to_tf_same_padding_
from ssl_zoo.utils.file_io import cache_dir

logger = logging.getLogger(__name__)


def list_models() -> List[str]:
    """Names of the catalog entries."""
    return list(load_catalog())


def build_entry_backbone(entry: CatalogEntry) -> nn.Module:
    """The randomly initialised backbone an entry's weights belong to (TF padding if needed)."""
    model = build_backbone(entry.arch, width=entry.width, base_width=entry.base_width, cifar_stem=entry.cifar_stem)
    if entry.padding == "tf_same":
        model = convert_to_tf_same_padding_(model)
    elif entry.padding != "torch":
        raise ValueError(f"entry '{entry.name}': unknown padding '{entry.padding}' (torch or tf_same)")
    return model


def _converted_cache_path(entry: CatalogEntry, source: str) -> str:
    st = os.stat(source)
    key = json.dumps([entry.name, entry.format, entry.convert, os.path.abspath(source), st.st_size, st.st_mtime])
    return os.path.join(cache_dir(), "converted", f"{entry.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.safetensors")


def get_state_dict(name: str, *, progress: bool = True, offline: Optional[bool] = None) -> Dict[str, torch.Tensor]:
    """Download (or reuse) entry ``name`` and return its converted backbone state dict.

    The conversion result is cached as safetensors under ``$SSL_ZOO_CACHE/converted`` so a
    multi-GB Haiku pickle is parsed once.
    """
    entry = get_entry(name)
    source = download_entry(name, progress=progress, offline=offline)
    converted = _converted_cache_path(entry, source)
    if os.path.isfile(converted):
        from safetensors.torch import load_file

        return load_file(converted)
    sd = convert_checkpoint(load_checkpoint(source, entry.format), entry.format, **entry.convert)
    os.makedirs(os.path.dirname(converted), exist_ok=True)
    export_safetensors(sd, converted, metadata={"entry": name, "arch": entry.arch, "padding": entry.padding})
    return sd


def load_backbone_state(model: nn.Module, state_dict: Dict[str, torch.Tensor], *, source: str = "") -> nn.Module:
    """``model.load_state_dict`` that tolerates only missing ``num_batches_tracked`` counters."""
    result = model.load_state_dict(state_dict, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise RuntimeError(f"weights {source} do not fit the backbone: missing {missing[:8]}, "
                           f"unexpected {result.unexpected_keys[:8]}")
    return model


def get(name: str, pretrained: bool = True, *, progress: bool = True, offline: Optional[bool] = None) -> nn.Module:
    """The backbone of catalog entry ``name`` (``[B, 3, H, W] -> [B, out_dim]``).

    Args:
        name: a catalog name (:func:`list_models`).
        pretrained: load the entry's weights (downloaded, verified and converted on first use);
            False gives the same architecture randomly initialised.
        progress: show download progress.
        offline: use the cache only (default ``$SSL_ZOO_OFFLINE``).

    Returns:
        the model in training mode, as ``build_backbone`` returns it; call ``.eval()`` for
        feature extraction. Entries with ``padding: tf_same`` come with TF-"SAME" layers.
    """
    entry = get_entry(name)
    model = build_entry_backbone(entry)
    if pretrained:
        load_backbone_state(model, get_state_dict(name, progress=progress, offline=offline), source=f"of '{name}'")
    return model


__all__ = ["CONVERTER_REGISTRY", "CatalogEntry", "PathManager", "build_entry_backbone", "cache_dir", "convert_checkpoint",
           "convert_file", "download_entry", "export_safetensors", "export_timm", "export_torchvision",
           "get", "get_entry", "get_state_dict", "list_models", "load_backbone_state", "load_catalog",
           "render_markdown"]
