"""torch.hub entry points: every model-zoo entry, by its catalog name.

Examples:
    >>> import torch
    >>> model = torch.hub.load("/path/to/ssl_zoo", "byol_r50_1x_1000ep", source="local", pretrained=True)
    >>> entry = torch.hub.load("/path/to/ssl_zoo", "catalog_entry", "byol_r50_1x_1000ep", source="local")
    >>> # entry.input_size, entry.mean, entry.std: how to feed it

Each entry point is ``ssl_zoo.model_zoo.get(name, pretrained=pretrained, progress=progress)``:
the backbone ``[B, 3, S, S] -> [B, D]`` with the entry's verified, converted weights. Downloads
honour ``SSL_ZOO_CACHE``, ``SSL_ZOO_BASE_URL``, ``SSL_ZOO_OFFLINE`` and ``SSL_ZOO_CATALOG``.
"""
import functools
import os
import sys

dependencies = ["torch", "torchvision", "timm", "fvcore", "iopath", "yaml", "safetensors", "tabulate"]

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # this checkout's ssl_zoo, also when installed elsewhere

from ssl_zoo import model_zoo as _zoo  # noqa: E402


def catalog_entry(name):
    """The catalog entry ``name`` (architecture, input size, mean / std, license, metrics)."""
    return _zoo.get_entry(name)


def _entry_point(name, pretrained=True, progress=True, **kwargs):
    return _zoo.get(name, pretrained=pretrained, progress=progress, **kwargs)


for _name in _zoo.list_models():
    _fn = functools.partial(_entry_point, _name)
    _entry = _zoo.get_entry(_name)
    _fn.__doc__ = (f"{_entry.description}\n\n{_entry.arch} {_entry.width}x, input {_entry.input_size} px, "
                   f"mean {_entry.mean}, std {_entry.std}; weights license: {_entry.license}.")
    globals()[_name] = _fn
