"""TensorFlow / JAX ``padding="SAME"`` for PyTorch convolutions and max-pooling.

Why this exists: TF's "SAME" pads a strided layer *asymmetrically*, putting the odd
pixel at the end (bottom / right): total padding ``max((ceil(n/s) - 1) * s + k - n, 0)``
split as ``total // 2`` before and the rest after. PyTorch's ``padding=k//2`` is
symmetric. For a 7x7/2 stem on 224 px TF pads (2, 3) where PyTorch pads (3, 3); for the
3x3/2 max-pool and the 3x3/2 bottleneck convolutions on even sizes TF pads (0, 1) where
PyTorch pads (1, 1). Weights trained with one convention and run with the other see
every strided feature map shifted by one pixel: loading DeepMind's BYOL (Haiku) ResNets
into a stock PyTorch ResNet loses about 4.6 points of ImageNet top-1 (issue 6).

:func:`convert_to_tf_same_padding_` swaps every ``nn.Conv2d`` / ``nn.MaxPool2d`` of a
model for a subclass that computes the TF padding from the input size at run time. The
parameters are the same objects, so state-dict keys and shapes do not change: a model
loads the same weights before and after conversion. For stride-1 layers with odd kernels
(and for odd input sizes) the TF padding is symmetric and the result equals PyTorch's.
"""
from __future__ import annotations

from timm.layers import Conv2dSame
from timm.layers.pool2d_same import MaxPool2dSame
from torch import nn


def _same_conv_from(conv: nn.Conv2d) -> Conv2dSame:
    new = Conv2dSame(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                       padding=0, dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None,
                       device="meta")
    new.weight = conv.weight  # the same Parameter objects: keys, values and optimizer refs unchanged
    new.bias = conv.bias
    return new


def _convert(module: nn.Module) -> nn.Module:
    if type(module) is nn.Conv2d and module.padding_mode == "zeros":
        return _same_conv_from(module)
    if type(module) is nn.MaxPool2d:
        return MaxPool2dSame(module.kernel_size, module.stride, 0, module.dilation)
    for name, child in list(module.named_children()):
        new = _convert(child)
        if new is not child:
            setattr(module, name, new)
    return module


def convert_to_tf_same_padding_(module: nn.Module) -> nn.Module:
    """Replace, in place and recursively, every ``nn.Conv2d`` and ``nn.MaxPool2d`` of
    ``module`` by its TF-"SAME" twin (same parameters). Returns ``module`` (converted
    itself when it is a bare Conv2d / MaxPool2d), with ``tf_same_padding = True`` set.

    Only zero-padded convolutions are converted (``padding_mode="zeros"``).
    """
    module = _convert(module)
    module.tf_same_padding = True
    return module
