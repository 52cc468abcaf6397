"""ResNet v1 encoders (He et al. 2016) with SimCLR/BYOL width multipliers.

BYOL (Grill et al. 2020, PROTOCOLS.md s.2) uses a post-activation ResNet-50 v1 whose
representation ``y`` is the 2048-d global average pool, and also ResNet-101/152/200
and "wider" networks (2x, 3x, 4x). As in SimCLR (Chen et al. 2020, App. B.1), the width
multiplier scales *every* convolution, stem included, so R50 2x has ``out_dim`` 4096.
This differs from torchvision's ``wide_resnet50_2``, which only widens the inner 3x3
convolution of each bottleneck and keeps the 2048-d output.

The blocks and ``_make_layer`` are torchvision's own, so a width-1, base-64 network has
exactly torchvision's state-dict keys and shapes (minus ``fc``) and loads its weights.
"""
from __future__ import annotations

import functools
from typing import Sequence, Type, Union

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.models.resnet import ResNet as _TVResNet

Block = Type[Union[BasicBlock, Bottleneck]]


class ResNet(_TVResNet):
    """torchvision ResNet without the classifier, with width multiplier and CIFAR stem.

    Args:
        block: ``BasicBlock`` (ResNet-10/18/34) or ``Bottleneck`` (ResNet-50 and deeper).
        layers: number of blocks in each of the four stages.
        width: multiplier of every convolution's width (BYOL Table 1: 1, 2, 3, 4).
        base_width: channels of the stem and the first stage before the multiplier
            (64 = torchvision; 16 or 32 give tiny nets for CPU runs). Stage ``i`` has
            ``base_width * width * 2**i`` planes (times 4 output channels for Bottleneck).
        cifar_stem: replace the 7x7/2 conv + 3x3/2 max-pool by a 3x3/1 conv and no
            pooling, so stage 1 of a 32 px image stays 32x32 (SimCLR App. B.9).
        zero_init_residual: zero the last BN gamma of every residual branch
            (Goyal et al. 2017). On in the official SimCLR, SimSiam and Barlow Twins code and in
            BYOL's released Haiku code (BlockV1 scale_init=zeros); off in the BYOL paper (gamma = 1).
        bn_momentum: PyTorch momentum of every BN (= 1 - decay; BYOL decay 0.9 -> 0.1).
        bn_eps: epsilon of every BN (BYOL: 1e-5).

    Shapes:
        ``forward``: ``[B, 3, H, W] -> [B, out_dim]`` (global-average-pooled features).
        ``forward_features``: ``[B, 3, H, W] -> [B, out_dim, H/32, W/32]`` (``H/8`` with
        the CIFAR stem).
    """

    def __init__(
        self,
        block: Block,
        layers: Sequence[int],
        *,
        width: int = 1,
        base_width: int = 64,
        cifar_stem: bool = False,
        zero_init_residual: bool = False,
        bn_momentum: float = 0.1,
        bn_eps: float = 1e-5,
    ) -> None:
        if width < 1 or base_width < 1:
            raise ValueError(f"width and base_width must be >= 1, got width={width}, base_width={base_width}")
        # torchvision's __init__ hard-codes 64 channels; we set up the attributes its
        # `_make_layer` reads and build the same layers with our widths instead.
        nn.Module.__init__(self)
        norm_layer = functools.partial(nn.BatchNorm2d, momentum=bn_momentum, eps=bn_eps)
        self._norm_layer = norm_layer
        self.dilation = 1
        self.groups = 1
        # torchvision's Bottleneck inner width is planes * base_width / 64: keeping its
        # `base_width` (= width_per_group) at 64 makes the inner width equal to planes,
        # i.e. the multiplier scales every conv uniformly (SimCLR-style).
        self.base_width = 64
        c = int(base_width * width)
        self.inplanes = c
        if cifar_stem:
            self.conv1 = nn.Conv2d(3, c, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(3, c, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = norm_layer(c)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, c, layers[0])
        self.layer2 = self._make_layer(block, 2 * c, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * c, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * c, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.out_dim: int = 8 * c * block.expansion
        self.width = width
        self.cifar_stem = cifar_stem
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        # Same initialisation as torchvision's ResNet.__init__.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Last-stage feature map ``[B, out_dim, h, w]``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Representation ``y``: ``[B, 3, H, W] -> [B, out_dim]``."""
        return torch.flatten(self.avgpool(self.forward_features(x)), 1)


# name -> (block, blocks per stage). ResNet-200 as in He et al. 2016b (Identity Mappings,
# Table 3) / BYOL's R200; "resnet10" is a cheap BasicBlock [1,1,1,1] net for quick CPU runs.
RESNET_SPECS = {
    "resnet10": (BasicBlock, [1, 1, 1, 1]),
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
    "resnet152": (Bottleneck, [3, 8, 36, 3]),
    "resnet200": (Bottleneck, [3, 24, 36, 3]),
}


def resnet(depth_name: str, **kwargs) -> ResNet:
    """Build ``RESNET_SPECS[depth_name]`` with the keyword arguments of :class:`ResNet`."""
    block, layers = RESNET_SPECS[depth_name]
    return ResNet(block, layers, **kwargs)
