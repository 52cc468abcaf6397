"""Projection / prediction heads: small MLPs on top of the representation.

BYOL (Grill et al. 2020, Sec. 3.3, PROTOCOLS.md s.2): projector g and predictor q are
both ``Linear -> BN -> ReLU -> Linear`` with hidden size 4096 and output 256, with no BN
on the output and no bias on the output Linear (official ``byol/utils/networks.py::MLP``:
``hk.Linear(output_size, with_bias=False)``). SimCLR (Chen et al. 2020, PROTOCOLS.md s.8): 2048 -> 2048 -> 128 with BN;
SimCLR v2 uses 3 layers and a BN on the output (``num_layers=3, last_bn=True``).
"""
from __future__ import annotations

from typing import Optional

from torch import nn


class MLP(nn.Sequential):
    """``Linear -> BN -> ReLU`` repeated ``num_layers - 1`` times, then ``Linear`` (``-> BN``).

    A ``Sequential`` so that the forward pass is a plain loop over the layers.

    Args:
        in_dim: input features.
        hidden_dim: width of every hidden layer.
        out_dim: output features.
        num_layers: number of Linear layers (1 = a single Linear [+ BN]).
        last_bn: add a BatchNorm1d on the output (SimCLR); the last Linear then has no
            bias, which the BN would cancel. BYOL: False.
        bn_momentum: PyTorch BN momentum (= 1 - decay; BYOL 0.1).
        bn_eps: BN epsilon (BYOL 1e-5).
        hidden_bn: BN after each hidden Linear (True); False gives ``Linear -> ReLU``
            hidden layers, MoCo v2's MLP head (2048 -> 2048 -> 128 without BN).
        out_bias: bias of the output Linear; None = ``not last_bn``. BYOL's code: False.
        last_bn_center: the output BN learns a shift beta (True). SimCLR's code uses
            ``BatchNorm(center=False)``: beta is then held at 0 (``requires_grad=False``, so
            it is in no optimizer group) and only gamma is learnt.

    Shapes:
        ``[B, in_dim] -> [B, out_dim]``.

    Examples:
        >>> projector = MLP(2048, 4096, 256)   # BYOL g
        >>> predictor = MLP(256, 4096, 256)    # BYOL q
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        num_layers: int = 2,
        last_bn: bool = False,
        bn_momentum: float = 0.1,
        bn_eps: float = 1e-5,
        hidden_bn: bool = True,
        out_bias: Optional[bool] = None,
        last_bn_center: bool = True,
    ) -> None:
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        layers = []
        d = in_dim
        for _ in range(num_layers - 1):
            # Bias kept before the BN as in BYOL's code (hk.Linear); it is a no-op there.
            layers.append(nn.Linear(d, hidden_dim))
            if hidden_bn:
                layers.append(nn.BatchNorm1d(hidden_dim, eps=bn_eps, momentum=bn_momentum))
            layers.append(nn.ReLU(inplace=True))
            d = hidden_dim
        layers.append(nn.Linear(d, out_dim, bias=(not last_bn) if out_bias is None else bool(out_bias)))
        if last_bn:
            bn = nn.BatchNorm1d(out_dim, eps=bn_eps, momentum=bn_momentum)
            if not last_bn_center:
                # Kept as a frozen zero (not removed) so SyncBN / split-BN conversions, which copy
                # weight and bias together, need no special case.
                bn.bias.requires_grad_(False)
            layers.append(bn)
        super().__init__(*layers)
        self.in_dim = in_dim
        self.hidden_dim = hidden_dim
        self.out_dim = out_dim
