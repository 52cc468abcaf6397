"""Export a whole backbone (architecture + weights) to TorchScript and ONNX.

Unlike ``export.py``'s weight files, these hold the graph, so a TF-"SAME"-padded BYOL backbone
keeps its padding and the file runs without ssl_zoo: ``torch.jit.load(path)`` or
``onnxruntime.InferenceSession(path)``. Both trace the model in eval mode on one
``[1, 3, S, S]`` input; the batch dimension is exported as dynamic.
"""
from __future__ import annotations

import importlib.util
import io
import logging

import torch
from torch import nn

from ssl_zoo.utils.file_io import atomic_write

__all__ = ["export_onnx", "export_torchscript", "onnx_available"]

logger = logging.getLogger(__name__)


def _example(model: nn.Module, input_size: int) -> torch.Tensor:
    p = next(model.parameters(), None)
    return torch.zeros(1, 3, int(input_size), int(input_size), device=p.device if p is not None else "cpu")


def export_torchscript(model: nn.Module, path: str, *, input_size: int = 224) -> str:
    """``torch.jit.trace`` of ``model.eval()`` (``[B, 3, S, S] -> [B, D]``) written atomically to ``path``."""
    model = model.eval()
    with torch.no_grad():
        traced = torch.jit.trace(model, _example(model, input_size))
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    data = buf.getvalue()
    atomic_write(path, lambda f: f.write(data))
    logger.info(f"wrote TorchScript {path} ({len(data) / 1e6:.1f} MB, input [B, 3, {input_size}, {input_size}])")
    return path


def onnx_available() -> bool:
    """Whether ``torch.onnx.export`` can run: it needs the ``onnx`` package (and ``onnxscript``
    for torch's default dynamo exporter)."""
    return importlib.util.find_spec("onnx") is not None


def export_onnx(model: nn.Module, path: str, *, input_size: int = 224, opset: int = 17) -> str:
    """ONNX graph of ``model.eval()`` with a dynamic batch dimension (input ``images``, output ``features``).

    Raises:
        ModuleNotFoundError: the ``onnx`` package is missing (``pip install onnx onnxscript``).
    """
    if not onnx_available():
        raise ModuleNotFoundError("ONNX export needs the 'onnx' package: pip install onnx onnxscript "
                                  "(or pip install 'ssl_zoo[onnx]')")
    model = model.eval()
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(model, (_example(model, input_size),), buf, input_names=["images"],
                          output_names=["features"], dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
                          opset_version=opset, dynamo=False)
    data = buf.getvalue()
    atomic_write(path, lambda f: f.write(data))
    logger.info(f"wrote ONNX {path} ({len(data) / 1e6:.1f} MB, opset {opset})")
    return path
