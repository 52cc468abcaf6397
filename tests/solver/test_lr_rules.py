"""Per-parameter-group lr rules (``ssl_zoo.solver.build`` module docstring) against hand computation:

- ``fixed_lr``: SimSiam's predictor lr stays at the scaled peak lr through warm-up and cosine
  (Chen & He 2021, Table 1c; official ``main_simsiam.py --fix-pred-lr``);
- ``bias_norm_only`` rules: Barlow Twins' biases and BN parameters get 0.0048 / 0.2 = 0.024 of the
  weights' lr on the same schedule (official ``main.py``);
- group building with mixed flags, and optimizer states saved before these keys existed.
"""
import copy
import math

import pytest
import torch
from torch import nn

from ssl_zoo.config.defaults import _C
from ssl_zoo.engine.hooks import LRScheduler
from ssl_zoo.modeling.method import build_method
from ssl_zoo.solver import build_lr_schedule, build_optimizer, get_param_groups
from ssl_zoo.solver.build import LRRule

torch.set_num_threads(1)


class _Trainer:
    """The parts of a trainer that ``LRScheduler.before_step`` uses."""

    def __init__(self, optimizer):
        self.optimizer, self.iter, self.scalars = optimizer, 0, {}

    def put_scalar(self, name, value):
        self.scalars[name] = value


def _lrs_at(optimizer, schedule, iteration):
    hook = LRScheduler(schedule)
    hook.trainer = _Trainer(optimizer)
    hook.trainer.iter = iteration
    hook.before_step()
    return [g["lr"] for g in optimizer.param_groups]


class Mixed(nn.Module):
    """encoder (plain) + predictor; see ``MIXED_RULES``."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
        self.predictor = nn.Sequential(nn.Linear(4, 4, bias=False), nn.LayerNorm(4), nn.Linear(4, 2))


# predictor at lr x 2, fixed except ``predictor.2.weight``; every bias / norm parameter at x 0.5.
MIXED_RULES = [LRRule("predictor.", lr_mult=2.0), LRRule("predictor.0.", fixed_lr=True),
               LRRule("predictor.1.", fixed_lr=True), LRRule("predictor.2.bias", fixed_lr=True),
               LRRule("", lr_mult=0.5, bias_norm_only=True)]


def _by_key(groups):
    return {(g["lars_exclude"], g["lr_mult"], g["fixed_lr"]): set(g["param_names"]) for g in groups}


def test_group_building_with_mixed_flags():
    groups = get_param_groups(Mixed(), weight_decay=1e-4, lr_rules=MIXED_RULES)
    assert _by_key(groups) == {
        (False, 1.0, False): {"encoder.0.weight"},
        (False, 2.0, True): {"predictor.0.weight"},
        (False, 2.0, False): {"predictor.2.weight"},
        (True, 0.5, False): {"encoder.0.bias", "encoder.1.weight", "encoder.1.bias"},
        (True, 1.0, True): {"predictor.1.weight", "predictor.1.bias", "predictor.2.bias"},  # 2 x 0.5
    }
    assert [g["lars_exclude"] for g in groups] == [False, False, False, True, True]  # regular first
    # Without exclusion the bias/norm parameters keep their own lr rule but join the regular groups.
    groups = get_param_groups(Mixed(), weight_decay=1e-4, exclude_bias_and_norm=False,
                              lr_rules=MIXED_RULES)
    assert _by_key(groups) == {
        (False, 1.0, False): {"encoder.0.weight"},
        (False, 2.0, True): {"predictor.0.weight"},
        (False, 2.0, False): {"predictor.2.weight"},
        (False, 0.5, False): {"encoder.0.bias", "encoder.1.weight", "encoder.1.bias"},
        (False, 1.0, True): {"predictor.1.weight", "predictor.1.bias", "predictor.2.bias"},
    }
    # No rule anywhere: one group per exclusion, all schedule-following, as before.
    groups = get_param_groups(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)), weight_decay=1e-4)
    assert [(g["lars_exclude"], g["lr_mult"], g["fixed_lr"]) for g in groups] == [(False, 1.0, False),
                                                                                 (True, 1.0, False)]


def _cfg(**solver):
    cfg = _C.clone()
    cfg.SOLVER.OPTIMIZER, cfg.SOLVER.BASE_LR, cfg.SOLVER.IMS_PER_BATCH = "SGD", 0.05, 512  # peak 0.1
    cfg.SOLVER.LR_SCHEDULER, cfg.SOLVER.WARMUP_ITERS, cfg.SOLVER.FINAL_LR_FRACTION = "warmup_cosine", 4, 0.0
    for k, v in solver.items():
        cfg.SOLVER[k] = v
    return cfg


def test_fixed_lr_group_keeps_base_lr_through_warmup_and_cosine():
    cfg = _cfg()
    opt = build_optimizer(cfg, Mixed(), MIXED_RULES)
    sched = build_lr_schedule(cfg, iters_per_epoch=10, max_iter=24)
    peak, warmup, total = 0.1, 4, 24
    assert sched.peak_lr == pytest.approx(peak) and sched.warmup_steps == warmup
    for g in opt.param_groups:
        assert g["base_lr"] == pytest.approx(peak * g["lr_mult"])
    for it in (0, 1, 3, 4, 5, 14, 23, 24):
        # Hand computation of linear warm-up from 0, then cosine to 0.
        expected = peak * it / warmup if it < warmup else \
            peak * 0.5 * (1 + math.cos(math.pi * (it - warmup) / (total - warmup)))
        for g, lr in zip(opt.param_groups, _lrs_at(opt, sched, it)):
            if g["fixed_lr"]:
                assert lr == pytest.approx(peak * g["lr_mult"])  # the base lr, warm-up and decay ignored
            else:
                assert lr == pytest.approx(expected * g["lr_mult"], abs=1e-12)
    assert sum(g["fixed_lr"] for g in opt.param_groups) == 2


def test_fixed_lr_survives_state_dict_and_old_states_follow_the_schedule():
    cfg = _cfg()
    sched = build_lr_schedule(cfg, iters_per_epoch=10, max_iter=24)
    opt = build_optimizer(cfg, Mixed(), MIXED_RULES)
    # Resume: a fresh optimizer loading the saved state keeps the flags and base lrs.
    fresh = build_optimizer(cfg, Mixed(), MIXED_RULES)
    fresh.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert [(g["fixed_lr"], g["base_lr"]) for g in fresh.param_groups] == \
        [(g["fixed_lr"], g["base_lr"]) for g in opt.param_groups]
    assert _lrs_at(fresh, sched, 0) == _lrs_at(opt, sched, 0)
    # A state saved before ``fixed_lr`` / ``base_lr`` existed: every group follows the schedule.
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    old = build_optimizer(cfg, model)
    state = old.state_dict()
    for g in state["param_groups"]:
        del g["fixed_lr"], g["base_lr"]
    new = build_optimizer(cfg, model)
    new.load_state_dict(state)
    assert _lrs_at(new, sched, 2) == pytest.approx([0.05, 0.05])
    # A fixed group built by hand without base_lr is an error, not a silent schedule.
    bad = torch.optim.SGD([{"params": [nn.Parameter(torch.ones(1))], "fixed_lr": True}], lr=0.1)
    with pytest.raises(KeyError, match="base_lr"):
        _lrs_at(bad, sched, 0)


def _method_cfg(tiny_cfg, method, *opts):
    cfg = tiny_cfg.clone()
    cfg.merge_from_list(["MODEL.METHOD", method, "SOLVER.OPTIMIZER", "LARS", "SOLVER.EXCLUDE_BIAS_AND_NORM", True,
                         "SOLVER.WARMUP_ITERS", 3, "SOLVER.BASE_LR", 0.2, "SOLVER.IMS_PER_BATCH", 512, *opts])
    return cfg


def test_barlow_twins_bias_and_norm_get_0_024_of_the_weights_lr(tiny_cfg):
    cfg = _method_cfg(tiny_cfg, "BarlowTwins", "BARLOWTWINS.PROJECTOR_DIM", 32)
    assert cfg.BARLOWTWINS.BIAS_NORM_LR_MULT == pytest.approx(0.0048 / 0.2)
    model = build_method(cfg)
    opt = build_optimizer(cfg, model, lr_rules=type(model).lr_rules(cfg))
    sched = build_lr_schedule(cfg, iters_per_epoch=10, max_iter=20)
    # Official main.py: "biases" = every 1-d parameter (Linear biases, BN weights and biases).
    names = {n for n, p in model.named_parameters() if p.ndim == 1}
    assert [(g["lars_exclude"], g["lr_mult"], g["fixed_lr"]) for g in opt.param_groups] == \
        [(False, 1.0, False), (True, 0.024, False)]
    assert set(opt.param_groups[1]["param_names"]) == names
    assert any(n.startswith("projector.") for n in names) and any(n.startswith("backbone.") for n in names)
    for it in (0, 1, 3, 10, 19):
        weights_lr, bias_lr = _lrs_at(opt, sched, it)
        assert weights_lr == pytest.approx(sched(it))
        assert bias_lr == pytest.approx(0.024 * sched(it))
    assert opt.param_groups[0]["base_lr"] == pytest.approx(0.4)  # 0.2 x 512/256
    assert opt.param_groups[1]["base_lr"] == pytest.approx(0.0096)  # 0.0048 x 512/256


@pytest.mark.parametrize("fix", [True, False])
def test_simsiam_predictor_lr_fixed(tiny_cfg, fix):
    cfg = _method_cfg(tiny_cfg, "SimSiam", "SIMSIAM.PROJECTOR_DIM", 32, "SIMSIAM.PREDICTOR_HIDDEN_DIM", 8,
                      "SIMSIAM.FIX_PREDICTOR_LR", fix)
    model = build_method(cfg)
    opt = build_optimizer(cfg, model, lr_rules=type(model).lr_rules(cfg))
    sched = build_lr_schedule(cfg, iters_per_epoch=10, max_iter=20)
    fixed = {n for g in opt.param_groups if g["fixed_lr"] for n in g["param_names"]}
    assert fixed == ({n for n, _ in model.named_parameters() if n.startswith("predictor.")} if fix else set())
    for it in (0, 2, 3, 11, 19):
        for g, lr in zip(opt.param_groups, _lrs_at(opt, sched, it)):
            assert lr == pytest.approx(0.4 if g["fixed_lr"] else sched(it))
