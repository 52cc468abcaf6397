"""BYOL's target-network ablation in miniature (Grill et al. 2020, Table 5a; PROTOCOLS.md s.7):
with tau = 0 (the target is the online network under stop-gradient) training collapses, with
BYOL's moving average it does not. Both runs use the real BYOL module, EMA hook, trainer and
CollapseMonitor; only the data is synthetic (8 Gaussian clusters in 32-d, views = strong additive
noise) and the encoder an MLP, so the pair of runs takes a few seconds on one CPU thread.

The regime is chosen where the analysis of Tian et al. 2021 ("Understanding self-supervised
learning dynamics without contrastive pairs") predicts the difference: strong augmentation and
weight decay make the collapsed point attract a network whose target follows it instantly
(tau = 0); the slow target of BYOL keeps the eigen-modes alive.
"""
import logging
import math

import torch
from torch import nn

from ssl_zoo.engine.hooks import CollapseMonitor
from ssl_zoo.engine.trainer import SSLTrainer
from ssl_zoo.modeling.heads import MLP
from ssl_zoo.modeling.losses.byol import BYOLLoss
from ssl_zoo.solver.schedules import build_momentum_schedule
from ssl_zoo_methods.byol import BYOL

torch.set_num_threads(1)


class _Encoder(nn.Sequential):
    def __init__(self, in_dim=32, dim=64):
        super().__init__(nn.Linear(in_dim, dim), nn.BatchNorm1d(dim), nn.ReLU(), nn.Linear(dim, dim))
        self.out_dim = dim


class _NoisyClusters:
    """Batch ``index``: 128 points of 8 Gaussian clusters, two views with noise of std 1.5."""

    def __init__(self, seed=0, batch=128, noise=1.5):
        g = torch.Generator().manual_seed(seed)
        centers = torch.randn(8, 32, generator=g) * 2
        self.points = centers[torch.randint(0, 8, (2048,), generator=g)] + torch.randn(2048, 32, generator=g)
        self.seed, self.batch, self.noise = seed, batch, noise
        self.iterator = iter(range(10**9))

    def batch_transform(self, batch, index):
        g = torch.Generator().manual_seed(self.seed * 100_003 + index)
        x = self.points[torch.randint(0, len(self.points), (self.batch,), generator=g)]
        return [x + self.noise * torch.randn(x.shape, generator=g) for _ in range(2)], None


def _train(tau, schedule, seed=0, steps=400):
    torch.manual_seed(seed)
    model = BYOL(_Encoder(), MLP(64, 128, 32), MLP(32, 128, 32), BYOLLoss(), build_momentum_schedule(schedule, tau))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9,
                          weight_decay=0.04)
    trainer = SSLTrainer(model, opt, _NoisyClusters(seed), steps, device="cpu",
                         hooks=[CollapseMonitor(period=50)])
    trainer.train()
    return [v for _, v in trainer.storage.history("collapse_std_sqrt_d")]


class _Warnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_stop_gradient_of_online_collapses_and_byol_does_not():
    hooks_logger = logging.getLogger("ssl_zoo.engine.hooks")  # its own handler: setup_logger may stop propagation
    for seed in (0, 1):
        warnings = _Warnings()
        hooks_logger.addHandler(warnings)
        try:
            tau0 = _train(0.0, "constant", seed)  # configs/byol/ablations/tau0_stop_gradient_online.yaml
            tau0_warned = any("Possible collapse" in m for m in warnings.messages)
            warnings.messages.clear()
            byol = _train(0.99, "cosine", seed)  # BYOL's schedule from tau_base 0.99
            byol_warned = any("Possible collapse" in m for m in warnings.messages)
        finally:
            hooks_logger.removeHandler(warnings)
        assert tau0_warned and not byol_warned  # the monitor warns about the collapsing run only
        # std of the L2-normalised embeddings x sqrt(d): ~1 healthy, 0 collapsed
        assert tau0[0] > 0.5, tau0  # both start healthy
        assert tau0[-1] < 0.02, tau0
        assert min(byol) > 0.5, byol
        assert all(math.isfinite(v) for v in tau0 + byol)
