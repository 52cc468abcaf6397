"""Tests of ssl_zoo.solver against hand-written per-parameter references and hand computation."""
import copy
import math

import pytest
import torch
from torch import nn

from ssl_zoo.config.defaults import _C
from ssl_zoo.solver.build import LRRule
from ssl_zoo.solver import (
    LARS,
    LR_SCHEDULER_REGISTRY,
    OPTIMIZER_REGISTRY,
    build_lr_schedule,
    build_optimizer,
    get_param_groups,
    scaled_lr,
    total_steps,
    warmup_cosine,
    warmup_step,
)

torch.set_num_threads(1)


class TinyNet(nn.Module):
    """conv (no bias) -> BN -> ReLU -> pool -> linear (+bias) -> GroupNorm(1 group) -> linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 6)
        self.gn = nn.GroupNorm(2, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3))
        return self.head(self.gn(self.fc(x)))


def _make_model(seed=0):
    torch.manual_seed(seed)
    model = TinyNet().double()
    # Non-trivial BN/GN affine parameters so their gradients and norms are generic.
    with torch.no_grad():
        for m in (model.bn, model.gn):
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.5, 0.5)
    return model


def _reference_lars_step(params, grads, bufs, excluded, lr, momentum, wd, eta, nesterov=False, lr_in_momentum=False):
    """Naive per-parameter LARS, written from BYOL's optimizers.py (and optax.lars when lr_in_momentum)."""
    new_params = []
    for i, (w, g) in enumerate(zip(params, grads)):
        if excluded[i]:
            d = g.clone()
        else:
            d = g + wd * w
            wn, dn = torch.linalg.vector_norm(w), torch.linalg.vector_norm(d)
            ratio = eta * wn / dn if (wn > 0 and dn > 0) else 1.0
            d = ratio * d
        if lr_in_momentum:
            d = lr * d
        bufs[i] = momentum * bufs[i] + d
        step = d + momentum * bufs[i] if nesterov else bufs[i]
        new_params.append(w - (step if lr_in_momentum else lr * step))
    return new_params


def _loss(model, x):
    return model(x).pow(2).sum()


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("lr_in_momentum", [False, True])
def test_lars_matches_naive_reference_two_steps(nesterov, lr_in_momentum):
    model = _make_model()
    groups = get_param_groups(model, weight_decay=0.05)
    excluded_ids = {id(p) for g in groups if g["lars_exclude"] for p in g["params"]}
    params = [p for g in groups for p in g["params"]]
    excluded = [id(p) in excluded_ids for p in params]
    # Large-ish eta / wd so the trust ratio and the decay both matter numerically.
    opt = LARS(groups, lr=0.5, momentum=0.9, weight_decay=0.05, eta=0.02, nesterov=nesterov,
               lr_in_momentum=lr_in_momentum)
    ref = [p.detach().clone() for p in params]
    bufs = [torch.zeros_like(p) for p in params]
    torch.manual_seed(1)
    # The lr changes between the steps (as during warm-up), which separates the two formulations.
    for lr in (0.5, 0.3):
        for g in opt.param_groups:
            g["lr"] = lr
        x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
        opt.zero_grad()
        _loss(model, x).backward()
        grads = [p.grad.clone() for p in params]
        opt.step()
        ref = _reference_lars_step(ref, grads, bufs, excluded, lr, 0.9, 0.05, 0.02, nesterov, lr_in_momentum)
        for p, r in zip(params, ref):
            torch.testing.assert_close(p.detach(), r, rtol=1e-12, atol=1e-12)
        # The optimizer must not modify the gradients in place.
        for p, g in zip(params, grads):
            torch.testing.assert_close(p.grad, g, rtol=0, atol=0)


def test_lars_excluded_params_get_plain_momentum_sgd_and_regular_get_trust_ratio():
    """Hand computation: bias/BN = w - lr*buf with buf = m*buf + g; weights = trust-ratio scaled."""
    model = _make_model()
    groups = get_param_groups(model, weight_decay=0.1)
    lr, m, wd, eta = 0.4, 0.9, 0.1, 0.01
    opt = LARS(groups, lr=lr, momentum=m, weight_decay=wd, eta=eta)
    bn_w, fc_b, conv_w = model.bn.weight, model.fc.bias, model.conv.weight
    w0 = {n: p.detach().clone() for n, p in [("bn", bn_w), ("b", fc_b), ("conv", conv_w)]}

    torch.manual_seed(2)
    x1, x2 = torch.randn(4, 3, 8, 8, dtype=torch.float64), torch.randn(4, 3, 8, 8, dtype=torch.float64)
    _loss(model, x1).backward()
    g1 = {n: p.grad.clone() for n, p in [("bn", bn_w), ("b", fc_b), ("conv", conv_w)]}
    opt.step()
    # Step 1, excluded: no weight decay, no trust ratio.
    torch.testing.assert_close(bn_w.detach(), w0["bn"] - lr * g1["bn"])
    torch.testing.assert_close(fc_b.detach(), w0["b"] - lr * g1["b"])
    # Step 1, regular: d = g + wd w, ratio = eta ||w|| / ||d||.
    d = g1["conv"] + wd * w0["conv"]
    ratio = eta * w0["conv"].norm() / d.norm()
    torch.testing.assert_close(conv_w.detach(), w0["conv"] - lr * ratio * d)
    # The update of a regular tensor has norm lr * eta * ||w|| (the point of LARS).
    torch.testing.assert_close((conv_w.detach() - w0["conv"]).norm(), lr * eta * w0["conv"].norm())

    w1_bn = bn_w.detach().clone()
    opt.zero_grad()
    _loss(model, x2).backward()
    g2_bn = bn_w.grad.clone()
    opt.step()
    # Step 2, excluded: heavy-ball momentum SGD.
    torch.testing.assert_close(bn_w.detach(), w1_bn - lr * (m * g1["bn"] + g2_bn))


def test_lars_zero_norm_edge_cases():
    w_zero = nn.Parameter(torch.zeros(3, 2, dtype=torch.float64))  # ||w|| = 0 -> ratio 1
    w_nograd = nn.Parameter(torch.ones(4, dtype=torch.float64))  # ||d|| = 0 with wd = 0 -> ratio 1, no move
    g = torch.arange(6, dtype=torch.float64).reshape(3, 2) - 2.5
    w_zero.grad = g.clone()
    w_nograd.grad = torch.zeros(4, dtype=torch.float64)
    opt = LARS([w_zero, w_nograd], lr=0.1, momentum=0.9, weight_decay=0.0, eta=1e-3)
    opt.step()
    torch.testing.assert_close(w_zero.detach(), -0.1 * g)
    torch.testing.assert_close(w_nograd.detach(), torch.ones(4, dtype=torch.float64))
    assert torch.isfinite(w_zero).all() and torch.isfinite(w_nograd).all()

    # Zero gradient but weight decay: d = wd*w, ratio = eta/wd, update = lr * eta * w.
    w = nn.Parameter(torch.full((5,), 2.0, dtype=torch.float64))
    w.grad = torch.zeros(5, dtype=torch.float64)
    LARS([w], lr=0.5, momentum=0.9, weight_decay=1e-2, eta=1e-3).step()
    torch.testing.assert_close(w.detach(), torch.full((5,), 2.0 - 0.5 * 1e-3 * 2.0, dtype=torch.float64))

    # A parameter without gradient is left alone and gets no state.
    p = nn.Parameter(torch.ones(2))
    opt = LARS([p], lr=1.0)
    opt.step()
    assert torch.equal(p.detach(), torch.ones(2)) and len(opt.state) == 0


def test_lars_state_dict_resume_is_exact():
    model_a = _make_model()
    opt_a = LARS(get_param_groups(model_a, 0.01), lr=0.3, weight_decay=0.01, eta=0.02)
    torch.manual_seed(3)
    xs = [torch.randn(2, 3, 8, 8, dtype=torch.float64) for _ in range(3)]
    for x in xs[:2]:
        opt_a.zero_grad()
        _loss(model_a, x).backward()
        opt_a.step()
    model_b = copy.deepcopy(model_a)
    opt_b = LARS(get_param_groups(model_b, 0.01), lr=0.3, weight_decay=0.01, eta=0.02)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    for model, opt in ((model_a, opt_a), (model_b, opt_b)):
        opt.zero_grad()
        _loss(model, xs[2]).backward()
        opt.step()
    for pa, pb in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(pa, pb)


def test_lars_rejects_bad_arguments():
    p = [nn.Parameter(torch.ones(2))]
    with pytest.raises(ValueError):
        LARS(p, lr=-1.0)
    with pytest.raises(ValueError):
        LARS(p, lr=0.1, momentum=0.0, nesterov=True)


class OnlineTarget(nn.Module):
    """A BYOL-like layout: online encoder + predictor (lr x 10, ``RULES``), frozen EMA target copy."""

    def __init__(self):
        super().__init__()
        self.online = TinyNet()
        self.predictor = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
        self.target = TinyNet()
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.ln = nn.LayerNorm(3)
        self.scale = nn.Parameter(torch.ones(()))  # ndim 0: treated like a norm/bias parameter
        self.special = nn.Parameter(torch.ones(3, 3))  # lr x 0.5 (a rule on one parameter's name)


RULES = [LRRule("predictor.", lr_mult=10.0), LRRule("special", lr_mult=0.5)]


def _names_by_key(groups):
    return {(g["lars_exclude"], g["lr_mult"]): set(g["param_names"]) for g in groups}


def test_param_group_partition():
    model = OnlineTarget()
    groups = get_param_groups(model, weight_decay=1e-4, lr_rules=RULES)
    by_key = _names_by_key(groups)
    assert by_key == {
        (False, 1.0): {"online.conv.weight", "online.fc.weight", "online.head.weight"},
        (True, 1.0): {"online.bn.weight", "online.bn.bias", "online.fc.bias", "online.gn.weight",
                      "online.gn.bias", "online.head.bias", "ln.weight", "ln.bias", "scale"},
        (False, 10.0): {"predictor.0.weight", "predictor.3.weight"},
        (True, 10.0): {"predictor.0.bias", "predictor.1.weight", "predictor.1.bias", "predictor.3.bias"},
        (False, 0.5): {"special"},
    }
    for g in groups:
        assert g["weight_decay"] == (0.0 if g["lars_exclude"] else 1e-4)
        # Names and tensors line up.
        named = dict(model.named_parameters())
        assert all(named[n] is p for n, p in zip(g["param_names"], g["params"]))
    # Regular groups first; the EMA target (requires_grad False) is nowhere.
    assert [g["lars_exclude"] for g in groups] == sorted(g["lars_exclude"] for g in groups)
    all_ids = [id(p) for g in groups for p in g["params"]]
    assert len(all_ids) == len(set(all_ids))
    assert not {id(p) for p in model.target.parameters()} & set(all_ids)
    assert len(all_ids) == sum(p.requires_grad for p in model.parameters())


def test_param_group_no_exclusion_and_tied_weights():
    model = OnlineTarget()
    model.tied = model.online.head  # the same module registered twice: its params appear once
    groups = get_param_groups(model, weight_decay=1e-4, exclude_bias_and_norm=False, lr_rules=RULES)
    assert all(not g["lars_exclude"] and g["weight_decay"] == 1e-4 for g in groups)
    assert sorted(g["lr_mult"] for g in groups) == [0.5, 1.0, 10.0]
    n = sum(len(g["params"]) for g in groups)
    assert n == sum(p.requires_grad for p in model.parameters())  # .parameters() dedups too


def test_scaled_lr():
    assert scaled_lr(0.2, 4096) == pytest.approx(3.2)  # BYOL: 0.2 x 4096/256
    assert scaled_lr(0.2, 4096, 256, "linear") == pytest.approx(3.2)
    assert scaled_lr(1.2, 4096, 256, "sqrt") == pytest.approx(0.075 * math.sqrt(4096))  # SimCLR App. B.1
    assert scaled_lr(0.03, 4096, 256, "none") == 0.03
    assert scaled_lr(0.4, 512, 256) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="linear"):
        scaled_lr(0.1, 256, 256, "quadratic")


def test_warmup_cosine_values():
    peak = 2.0
    assert warmup_cosine(0, 100, 10, peak) == 0.0
    assert warmup_cosine(5, 100, 10, peak) == pytest.approx(1.0)  # mid-warm-up
    assert warmup_cosine(10, 100, 10, peak) == pytest.approx(peak)  # end of warm-up
    assert warmup_cosine(55, 100, 10, peak) == pytest.approx(peak / 2)  # mid-cosine
    assert warmup_cosine(100, 100, 10, peak) == pytest.approx(0.0, abs=1e-12)
    assert warmup_cosine(130, 100, 10, peak) == pytest.approx(0.0, abs=1e-12)  # no restart
    # With a final lr: end = final, mid = average.
    assert warmup_cosine(100, 100, 10, peak, final_lr=0.2) == pytest.approx(0.2)
    assert warmup_cosine(55, 100, 10, peak, final_lr=0.2) == pytest.approx(1.1)
    # No warm-up starts at the peak; a degenerate decay length does not divide by zero.
    assert warmup_cosine(0, 100, 0, peak) == pytest.approx(peak)
    assert warmup_cosine(10, 10, 10, peak) == 0.0


def _byol_code_learning_schedule(step, batch_size, base_lr, total, warmup):
    """Re-statement of deepmind-research byol/utils/schedules.py::learning_schedule."""
    lr = base_lr * batch_size / 256.0
    if step < warmup:
        return step / warmup * lr
    s = min(step - warmup, total - warmup)
    return lr * 0.5 * (1 + math.cos(math.pi * s / (total - warmup)))


def test_byol_paper_steps_and_schedule_from_cfg():
    assert total_steps(1000, 1281167, 4096) == 312784  # K, PROTOCOLS.md s.2
    assert total_steps(10, 1281167, 4096) == 3127  # warm-up
    cfg = _C.clone()  # defaults = BYOL 1000 ep: BASE_LR 0.2, batch 4096, 10 warm-up epochs, cosine to 0
    K = total_steps(cfg.SOLVER.EPOCHS, 1281167, cfg.SOLVER.IMS_PER_BATCH)
    sched = build_lr_schedule(cfg, iters_per_epoch=1281167 / 4096, max_iter=K)
    assert sched.warmup_steps == 3127 and sched.peak_lr == pytest.approx(3.2)
    for step in (0, 1, 1563, 3126, 3127, 3128, 100000, (K + 3127) // 2, K - 1, K):
        assert sched(step) == pytest.approx(_byol_code_learning_schedule(step, 4096, 0.2, K, 3127), abs=1e-12)
    assert sched(0) == 0.0 and sched(3127) == pytest.approx(3.2) and sched(K) == pytest.approx(0.0, abs=1e-12)


def test_warmup_step_and_cfg_overrides():
    assert warmup_step(0, 200, 10, 1.0, milestones=(120, 160)) == 0.0
    assert warmup_step(5, 200, 10, 1.0, milestones=(120, 160)) == pytest.approx(0.5)
    assert warmup_step(119, 200, 10, 1.0, milestones=(120, 160)) == pytest.approx(1.0)
    assert warmup_step(120, 200, 10, 1.0, milestones=(120, 160)) == pytest.approx(0.1)
    assert warmup_step(199, 200, 10, 1.0, milestones=(160, 120)) == pytest.approx(0.01)

    cfg = _C.clone()
    cfg.SOLVER.LR_SCHEDULER = "warmup_step"
    cfg.SOLVER.BASE_LR, cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.LR_SCALING = 0.03, 256, "linear"
    cfg.SOLVER.WARMUP_EPOCHS, cfg.SOLVER.STEPS, cfg.SOLVER.GAMMA = 0.0, (120, 160), 0.1
    sched = build_lr_schedule(cfg, iters_per_epoch=10, max_iter=2000)
    assert sched(0) == pytest.approx(0.03) and sched(1199) == pytest.approx(0.03)
    assert sched(1200) == pytest.approx(0.003) and sched(1600) == pytest.approx(0.0003)

    cfg = _C.clone()
    cfg.SOLVER.WARMUP_ITERS, cfg.SOLVER.FINAL_LR_FRACTION = 7, 0.1
    sched = build_lr_schedule(cfg, iters_per_epoch=100, max_iter=1007)
    assert sched.warmup_steps == 7
    assert sched(1007) == pytest.approx(0.1 * 3.2) and sched(507) == pytest.approx(0.55 * 3.2)

    cfg.SOLVER.LR_SCHEDULER = "warmup_cosin"
    with pytest.raises(KeyError, match="warmup_cosine"):
        build_lr_schedule(cfg, 100, 1000)


@pytest.mark.parametrize("name", LR_SCHEDULER_REGISTRY.names())
def test_every_lr_schedule_warms_up_linearly_from_zero_and_is_pure(name):
    """Any registered lr schedule: linear warm-up from exactly 0 to the peak (BYOL's code), never above the
    peak, and a pure function of the step (a resumed run recomputes every lr)."""
    fn = LR_SCHEDULER_REGISTRY.get(name)
    peak, warmup, total = 2.0, 10, 100
    lrs = [fn(k, total, warmup, peak) for k in range(total + 1)]
    assert lrs[0] == 0.0 and lrs[5] == pytest.approx(peak * 5 / warmup) and lrs[warmup] == pytest.approx(peak)
    assert all(0.0 <= lr <= peak + 1e-12 for lr in lrs)
    assert lrs == [fn(k, total, warmup, peak) for k in range(total + 1)]


@pytest.mark.parametrize("name", OPTIMIZER_REGISTRY.names())
def test_build_optimizer_from_cfg(name):
    cfg = _C.clone()
    cfg.SOLVER.OPTIMIZER = name
    cfg.SOLVER.BASE_LR, cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.ACCUM_STEPS = 0.2, 512, 2  # effective 1024
    cfg.SOLVER.WEIGHT_DECAY, cfg.SOLVER.LARS_ETA, cfg.SOLVER.BETAS = 1e-5, 2e-3, (0.8, 0.99)
    model = OnlineTarget()
    opt = build_optimizer(cfg, model)
    assert type(opt) is OPTIMIZER_REGISTRY.get(name)  # registered classes: LARS, torch's SGD / AdamW, ...
    for g in opt.param_groups:
        assert g["lr"] == pytest.approx(0.8 * g["lr_mult"])
        assert g["weight_decay"] == (0.0 if g["lars_exclude"] else 1e-5)
        if name == "LARS":
            assert g["eta"] == 2e-3 and g["momentum"] == 0.9 and g["nesterov"] is False
        if name == "AdamW":
            assert tuple(g["betas"]) == (0.8, 0.99)
    n = sum(len(g["params"]) for g in opt.param_groups)
    assert n == sum(p.requires_grad for p in model.parameters())
    # One step runs and only touches trainable parameters.
    target_before = [p.clone() for p in model.target.parameters()]
    model.online(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(target_before, model.target.parameters()))


def test_build_optimizer_unknown_name_lists_known():
    cfg = _C.clone()
    cfg.SOLVER.OPTIMIZER = "Lamb"
    with pytest.raises(KeyError) as err:
        build_optimizer(cfg, TinyNet())
    msg = str(err.value)
    assert all(n in msg for n in OPTIMIZER_REGISTRY.names()) and "Lamb" in msg
