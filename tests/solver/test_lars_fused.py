"""The fused LARS step (group-wide trust ratios) equals the per-tensor loop (the reference path)."""
import copy

import pytest
import torch
from torch import nn

from ssl_zoo.solver.lars import LARS

torch.set_num_threads(1)


def _model() -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4, bias=False), nn.Linear(4, 3))
    with torch.no_grad():
        m[3].weight.zero_()  # ||w|| = 0: the trust-ratio guard (ratio 1) is exercised
    return m


def _groups(m: nn.Module):
    weights = [p for n, p in m.named_parameters() if p.ndim > 1]
    others = [p for n, p in m.named_parameters() if p.ndim <= 1]
    return [{"params": weights}, {"params": others, "lars_exclude": True}]


def _train(fused: bool, steps: int = 6, **kwargs):
    m = _model()
    opt = LARS(_groups(m), lr=0.5, weight_decay=1e-2, fused=fused, **kwargs)
    g = torch.Generator().manual_seed(1)
    losses = []
    for k in range(steps):
        for group in opt.param_groups:
            group["lr"] = 0.5 * (k + 1) / steps  # a changing lr, as under warm-up
        x = torch.randn(16, 6, generator=g)
        loss = m(x).pow(2).mean()
        loss.backward()
        if k == 2:
            m[4].bias.grad = None  # a parameter without a gradient this step is skipped
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    return m, opt, losses


@pytest.mark.parametrize("kwargs", [{}, {"nesterov": True}, {"lr_in_momentum": True}])
def test_fused_lars_equals_loop(kwargs):
    m_loop, opt_loop, l_loop = _train(False, **kwargs)
    m_fused, opt_fused, l_fused = _train(True, **kwargs)
    assert l_fused == pytest.approx(l_loop, abs=1e-6)
    for a, b in zip(m_loop.parameters(), m_fused.parameters()):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0)
    for p_loop, p_fused in zip(m_loop.parameters(), m_fused.parameters()):
        torch.testing.assert_close(opt_fused.state[p_fused]["momentum_buffer"],
                                   opt_loop.state[p_loop]["momentum_buffer"], atol=1e-6, rtol=0)
    assert not torch.equal(m_fused[0].weight, _model()[0].weight)  # it trained


def test_fused_lars_first_step_matches_hand_computation():
    """One step from zero momentum: w - lr * eta ||w|| / ||g + wd w|| (g + wd w), per tensor."""
    m = _model()
    ref = copy.deepcopy(m)
    opt = LARS(_groups(m), lr=0.3, weight_decay=1e-2, eta=1e-3, fused=True)
    m(torch.ones(4, 6)).sum().backward()
    grads = {n: p.grad.clone() for n, p in m.named_parameters()}
    opt.step()
    for (n, p), p0 in zip(m.named_parameters(), ref.parameters()):
        g = grads[n]
        if p0.ndim > 1:
            d = g + 1e-2 * p0
            wn, dn = p0.norm(), d.norm()
            ratio = 1e-3 * wn / dn if (wn > 0 and dn > 0) else torch.tensor(1.0)
            expected = p0 - 0.3 * ratio * d
        else:
            expected = p0 - 0.3 * g
        torch.testing.assert_close(p.detach(), expected.detach(), atol=1e-7, rtol=1e-6)


def test_fused_lars_mixed_dtypes_fall_back_to_the_loop():
    a = nn.Parameter(torch.randn(3, 3))
    b = nn.Parameter(torch.randn(4, 2, dtype=torch.float64))
    a.grad, b.grad = torch.randn(3, 3), torch.randn(4, 2, dtype=torch.float64)
    a0, b0 = a.detach().clone(), b.detach().clone()
    LARS([a, b], lr=1.0, momentum=0.0, eta=1.0).step()
    for p, p0, g in ((a, a0, a.grad), (b, b0, b.grad)):
        torch.testing.assert_close(p.detach(), p0 - p0.norm() / g.norm() * g)
