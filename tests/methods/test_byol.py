"""BYOL against a hand-written reference of the paper's Sec. 3.1 equations."""
import copy

import pytest
import torch
import torch.nn.functional as F

from ssl_zoo.modeling.method import METHOD_REGISTRY, build_method


def _tiny_byol(tiny_cfg, **over):
    cfg = tiny_cfg.clone()
    cfg.merge_from_list(["BYOL.PROJECTOR_HIDDEN_DIM", 32, "BYOL.PROJECTOR_OUT_DIM", 16, "BYOL.PREDICTOR_HIDDEN_DIM", 32])
    for k, v in over.items():
        cfg.merge_from_list([k, v])
    torch.manual_seed(0)
    return build_method(cfg)


def _views(b=8):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(b, 3, 32, 32, generator=g), torch.randn(b, 3, 32, 32, generator=g)]


def test_loss_matches_paper_equations(tiny_cfg):
    model = _tiny_byol(tiny_cfg)
    ref = copy.deepcopy(model)
    v1, v2 = _views()
    out = model(_views())
    # Reference: separate forward per view, target in train mode (its own BN statistics).
    p1 = ref.predictor(ref.projector(ref.backbone(v1)))
    p2 = ref.predictor(ref.projector(ref.backbone(v2)))
    with torch.no_grad():
        t1 = ref.target_projector(ref.target_backbone(v1))
        t2 = ref.target_projector(ref.target_backbone(v2))

    def l(p, z):  # Eq. 2: || p/|p| - z/|z| ||^2
        return ((p / p.norm(dim=1, keepdim=True) - z / z.norm(dim=1, keepdim=True)) ** 2).sum(1).mean()

    expected = l(p1, t2) + l(p2, t1)  # Eq. 3: summed, not averaged
    assert torch.allclose(out["loss"], expected, atol=1e-5)
    assert 0 <= out["loss"].item() <= 8


def test_no_gradient_reaches_target_and_target_has_own_bn_stats(tiny_cfg):
    model = _tiny_byol(tiny_cfg)
    model(_views())["loss"].backward()
    assert all(p.grad is None for p in model.target_parameters())
    assert all(not p.requires_grad for p in model.target_parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())
    # target BN running statistics were updated by its own forward pass (official code)
    bn_t = next(m for m in model.target_backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not torch.allclose(bn_t.running_mean, torch.zeros_like(bn_t.running_mean))


def test_after_step_is_ema_of_parameters_only_with_cosine_tau(tiny_cfg):
    """after_step(k, K): xi <- tau xi + (1 - tau) theta, tau = 1 - (1 - 0.9)(cos(pi k/K) + 1)/2 (Sec. 3.1)."""
    import math

    model = _tiny_byol(tiny_cfg, **{"BYOL.TAU_BASE": 0.9})
    for k, K in ((0, 10), (5, 10), (3, 10)):
        with torch.no_grad():
            for p in model.backbone.parameters():
                p.add_(1.0)
            for p in model.projector.parameters():
                p.mul_(1.5)
        nets = (model.target_backbone, model.backbone, model.target_projector, model.projector)
        before = [[p.clone() for p in n.parameters()] for n in nets]
        buf_before = [b.clone() for b in model.target_backbone.buffers()]
        out = model.after_step(k, K)
        tau = 1 - (1 - 0.9) * (math.cos(math.pi * k / K) + 1) / 2
        assert out == {"tau": pytest.approx(tau)}
        for t0, o, t1 in zip(before[0], before[1], model.target_backbone.parameters()):
            torch.testing.assert_close(t1, tau * t0 + (1 - tau) * o)
        for t0, o, t1 in zip(before[2], before[3], model.target_projector.parameters()):
            torch.testing.assert_close(t1, tau * t0 + (1 - tau) * o)
        for b0, b1 in zip(buf_before, model.target_backbone.buffers()):
            assert torch.equal(b0, b1)


def test_concat_views_changes_bn_statistics(tiny_cfg):
    """Concatenating the views normalises with joint statistics: a different loss (why it is off by default)."""
    sep = _tiny_byol(tiny_cfg)
    cat = _tiny_byol(tiny_cfg, **{"BYOL.CONCAT_VIEWS": True})
    cat.load_state_dict(sep.state_dict())
    v = _views()
    v[1] = v[1] * 3 + 1  # views with different statistics
    assert not torch.allclose(sep(v)["loss"], cat(v)["loss"], atol=1e-4)


def test_independent_target_init(tiny_cfg):
    model = _tiny_byol(tiny_cfg, **{"BYOL.TARGET_INIT": "independent"})
    a = next(model.backbone.parameters())
    b = next(model.target_backbone.parameters())
    assert not torch.equal(a, b)
    assert torch.equal(next(_tiny_byol(tiny_cfg).target_backbone.parameters()), next(_tiny_byol(tiny_cfg).backbone.parameters()))


def test_online_classifier_is_detached(tiny_cfg):
    """With labels the method adds the classifier's loss, yet the encoder's gradient is exactly the
    gradient of the BYOL loss alone (the forward without labels): no gradient reaches it from the head."""
    model = _tiny_byol(tiny_cfg, **{"BYOL.ONLINE_CLASSIFIER_CLASSES": 10})
    labels = torch.arange(8) % 10
    with_labels, without = copy.deepcopy(model), copy.deepcopy(model)
    out = with_labels(_views(), labels)
    assert {"online_top1", "online_cls_loss"} <= set(out)
    assert out["online_cls_loss"] > 0 and not torch.allclose(out["loss"], out["byol_loss"])
    out["loss"].backward()
    without(_views())["loss"].backward()
    for (name, a), b in zip(with_labels.backbone.named_parameters(), without.backbone.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)
    assert with_labels.classifier.weight.grad.abs().sum() > 0


def test_predictor_lr_multiplier_reaches_param_groups(tiny_cfg):
    from ssl_zoo.solver.build import get_param_groups

    cfg = tiny_cfg.clone()
    cfg.merge_from_list(["BYOL.PREDICTOR_LR_MULT", 10.0])
    model = _tiny_byol(cfg)
    groups = get_param_groups(model, weight_decay=1e-6, lr_rules=type(model).lr_rules(cfg))
    pred = {id(p) for p in model.predictor.parameters()}
    mult = {id(p): g["lr_mult"] for g in groups for p in g["params"]}
    assert pred and all(mult[i] == 10.0 for i in pred)  # every predictor parameter at 10x
    others = [m for i, m in mult.items() if i not in pred]
    assert others and all(m == 1.0 for m in others)  # and nothing else
