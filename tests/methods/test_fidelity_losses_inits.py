"""SimCLR's official loss scale and LARS momentum convention (issue #12 item 2).

References transcribed from google-research/simclr ``tf2/objective.py::add_contrastive_loss``
(``logits_aa/ab/ba/bb``, self-similarities masked with ``LARGE_NUM``, ``loss = mean(loss_a +
loss_b)``) and ``tf2/lars_optimizer.py`` with ``classic_momentum=True``
(``next_v = m v + lr * trust_ratio * (g + wd w)``; ``w -= next_v``).
"""
import os

import numpy as np
import pytest
import torch
from torch import nn

from ssl_zoo.config import get_cfg
from ssl_zoo.modeling.losses.ntxent import NTXentLoss
from ssl_zoo.modeling.method import build_method
from ssl_zoo.solver import build_optimizer

torch.set_num_threads(1)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LARGE_NUM = 1e9


def _log_softmax(x):
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def official_simclr_loss(h1, h2, t):
    """numpy transcription of ``add_contrastive_loss`` (single replica, hidden_norm=True)."""
    a = h1 / np.linalg.norm(h1, axis=1, keepdims=True)
    b = h2 / np.linalg.norm(h2, axis=1, keepdims=True)
    n = a.shape[0]
    labels = np.concatenate([np.eye(n), np.zeros((n, n))], axis=1)  # one-hot on logits_ab's diagonal
    masks = np.eye(n)
    logits_aa = a @ a.T / t - masks * LARGE_NUM
    logits_bb = b @ b.T / t - masks * LARGE_NUM
    logits_ab = a @ b.T / t
    logits_ba = b @ a.T / t
    loss_a = -(labels * _log_softmax(np.concatenate([logits_ab, logits_aa], 1))).sum(1)
    loss_b = -(labels * _log_softmax(np.concatenate([logits_ba, logits_bb], 1))).sum(1)
    return float(np.mean(loss_a + loss_b))


def test_ntxent_official_scale():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randn(6, 5, generator=g, dtype=torch.float64)
    want = official_simclr_loss(z1.numpy(), z2.numpy(), 0.2)
    assert float(NTXentLoss(0.2, sum_directions=True)(z1, z2)) == pytest.approx(want, rel=1e-9)
    assert float(NTXentLoss(0.2)(z1, z2)) == pytest.approx(want / 2, rel=1e-9)  # the paper's Eq. 1 mean


def _cfg(path):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(ROOT, path))
    return cfg


@pytest.mark.parametrize("path", ["configs/simclr/r50_1000ep.yaml", "configs/simclr/quickstart.yaml"])
def test_simclr_method_uses_official_scale(path):
    cfg = _cfg(path)
    cfg.MODEL.BACKBONE.NAME, cfg.MODEL.BACKBONE.BASE_WIDTH = "resnet18", 8
    assert cfg.SIMCLR.SUM_DIRECTIONS
    assert build_method(cfg).loss_fn.sum_directions


def test_simclr_config_lars_lr_in_momentum_matches_classic_momentum():
    cfg = _cfg("configs/simclr/r50_1000ep.yaml")
    assert cfg.SOLVER.LARS_LR_IN_MOMENTUM
    byol = _cfg("configs/byol/r50_1000ep.yaml")
    assert not byol.SOLVER.LARS_LR_IN_MOMENTUM
    model = nn.Sequential(nn.Linear(3, 2, bias=False))
    cfg.SOLVER.WEIGHT_DECAY = 0.0
    opt = build_optimizer(cfg, model)
    assert all(g["lr_in_momentum"] for g in opt.param_groups)
    # Two steps with different lrs against the official classic_momentum update.
    w = model[0].weight
    w0 = w.detach().clone().double()
    grads = [torch.randn_like(w0), torch.randn_like(w0)]
    lrs = [0.5, 2.0]
    v = torch.zeros_like(w0)
    want = w0.clone()
    for g, lr in zip(grads, lrs):
        trust = 1e-3 * want.norm() / g.norm()
        v = 0.9 * v + lr * trust * g
        want = want - v
        for group in opt.param_groups:
            group["lr"] = lr
        w.grad = g.float()
        opt.step()
    torch.testing.assert_close(w.detach().double(), want, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------- zero-init of the last BN gamma (item 3)
def _last_bn_gammas(backbone):
    """The gamma of the last BN of each residual block (torchvision: bn3 in Bottleneck, bn2 in BasicBlock)."""
    out = []
    for name, m in backbone.named_modules():
        if hasattr(m, "conv1") and hasattr(m, "bn2") and name:
            out.append((getattr(m, "bn3", None) or m.bn2).weight.detach())
    assert out
    return out


@pytest.mark.parametrize("path,zero", [
    ("configs/simclr/r50_1000ep.yaml", True),      # tf2/resnet.py BatchNormRelu(init_zero=True)
    ("configs/simsiam/r50_100ep.yaml", True),      # builder.py zero_init_residual=True
    ("configs/barlow_twins/r50_1000ep.yaml", True),  # main.py resnet50(zero_init_residual=True)
    ("configs/simclr/quickstart.yaml", True),
    ("configs/simsiam/quickstart.yaml", True),
    ("configs/barlow_twins/quickstart.yaml", True),
    ("configs/byol/r50_1000ep.yaml", False),       # BYOL paper: gamma = 1
    ("configs/mocov2/r50_200ep.yaml", False),      # torchvision default
])
def test_zero_init_residual_follows_official_code(path, zero):
    cfg = _cfg(path)
    cfg.MODEL.BACKBONE.NAME, cfg.MODEL.BACKBONE.BASE_WIDTH = "resnet18", 8
    gammas = _last_bn_gammas(build_method(cfg).backbone)
    assert all(bool((g == 0).all()) == zero for g in gammas)


# ----------------------------------------------------------------- head output layers (item 4)
def test_byol_heads_output_linear_has_no_bias():
    """byol/utils/networks.py MLP: Linear(hidden) -> BN -> ReLU -> Linear(out, with_bias=False)."""
    cfg = _cfg("configs/byol/quickstart.yaml")
    model = build_method(cfg)
    for head in (model.projector, model.predictor):
        kinds = [type(m).__name__ for m in head]
        assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
        assert head[0].bias is not None and head[-1].bias is None
    # The target starts as a copy of the online projector: no output bias either.
    assert model.target_projector[-1].bias is None
    cfg.BYOL.HEAD_OUTPUT_BIAS = True
    assert build_method(cfg).projector[-1].bias is not None


def test_simclr_output_bn_has_no_centre():
    """tf2 SimCLR: the projection head's last BatchNorm(center=False): gamma learnt, beta = 0."""
    cfg = _cfg("configs/simclr/quickstart.yaml")
    cfg.MODEL.BACKBONE.NAME, cfg.MODEL.BACKBONE.BASE_WIDTH = "resnet18", 8
    cfg.SOLVER.OPTIMIZER = "LARS"
    model = build_method(cfg)
    bn = model.projector[-1]
    assert isinstance(bn, nn.BatchNorm1d) and model.projector[-2].bias is None
    assert bn.weight.requires_grad and not bn.bias.requires_grad and bool((bn.bias == 0).all())
    opt = build_optimizer(cfg, model)
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert id(bn.bias) not in in_opt and id(bn.weight) in in_opt
    # Forward/backward: the output equals BN without shift, x_hat * gamma.
    x = torch.randn(8, model.backbone.out_dim)
    out = model.projector(x)
    pre = nn.Sequential(*list(model.projector)[:-1])(x)
    want = (pre - pre.mean(0)) / torch.sqrt(pre.var(0, unbiased=False) + bn.eps) * bn.weight
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------- config values that cite the official code (item 9)
def test_cited_config_values():
    byol = _cfg("configs/byol/r50_1000ep.yaml")
    assert byol.SEED == 0  # deepmind-research byol/configs/byol.py: random_seed=0
    bt = _cfg("configs/barlow_twins/r50_1000ep.yaml")
    assert bt.SOLVER.WEIGHT_DECAY == pytest.approx(1.5e-6)  # the paper; official main.py: 1e-6 (option)
    text = open(os.path.join(ROOT, "configs/barlow_twins/Base-BarlowTwins-ImageNet.yaml")).read()
    assert "1e-6" in text and "1/W" in text
