"""SplitBatchNorm (per-group BN statistics in one process) and MoCo's single-process shuffling BN."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssl_zoo.config import get_cfg
from ssl_zoo.modeling.batchnorm import SplitBatchNorm, convert_split_batchnorm
from ssl_zoo.modeling.method import build_method


@pytest.mark.parametrize("shape", [(12, 5, 4, 3), (12, 5)])
def test_split_bn_equals_bn_per_group(shape):
    torch.manual_seed(0)
    g = 3
    x = torch.randn(*shape) * 2 + 1
    ref = nn.BatchNorm2d(5) if len(shape) == 4 else nn.BatchNorm1d(5)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-1, 1)
    split = convert_split_batchnorm(copy.deepcopy(ref), g)
    assert isinstance(split, SplitBatchNorm)
    y = split(x)
    # naive: group k = samples k, k + g, k + 2g, ... each normalised by its own BN copy
    expected = torch.empty_like(x)
    means, vars_ = [], []
    for k in range(g):
        bn = copy.deepcopy(ref)
        expected[k::g] = bn(x[k::g])
        means.append(bn.running_mean)
        vars_.append(bn.running_var)
    assert torch.allclose(y, expected, atol=1e-5)
    assert torch.allclose(split.running_mean, torch.stack(means).mean(0), atol=1e-6)
    assert torch.allclose(split.running_var, torch.stack(vars_).mean(0), atol=1e-6)
    assert int(split.num_batches_tracked) == 1
    # evaluation uses the running statistics, as nn.BatchNorm
    split.eval()
    ref_eval = copy.deepcopy(ref).eval()
    ref_eval.running_mean.copy_(split.running_mean)
    ref_eval.running_var.copy_(split.running_var)
    assert torch.allclose(split(x), ref_eval(x), atol=1e-6)


def test_split_bn_gradients_match_per_group_reference():
    torch.manual_seed(1)
    x = torch.randn(8, 4, 3, 3, requires_grad=True)
    ref = nn.BatchNorm2d(4)
    split = convert_split_batchnorm(copy.deepcopy(ref), 2)
    split(x).square().sum().backward()
    gx = x.grad.clone()
    x.grad = None
    bn = copy.deepcopy(ref)
    parts = [bn(x[k::2]) for k in range(2)]
    (parts[0].square().sum() + parts[1].square().sum()).backward()
    assert torch.allclose(gx, x.grad, atol=1e-5)


def test_split_bn_rejects_indivisible_batch():
    bn = SplitBatchNorm(3, 4)
    with pytest.raises(ValueError, match="not divisible"):
        bn(torch.randn(6, 3))


def test_moco_split_bn_shuffles_keys_and_unshuffles(monkeypatch):
    cfg = get_cfg()
    cfg.MODEL.METHOD = "MoCo"
    cfg.MODEL.BACKBONE.NAME, cfg.MODEL.BACKBONE.BASE_WIDTH, cfg.MODEL.BACKBONE.CIFAR_STEM = "resnet10", 4, True
    cfg.MOCO.PROJECTOR_HIDDEN_DIM, cfg.MOCO.PROJECTOR_OUT_DIM, cfg.MOCO.QUEUE_SIZE = 16, 8, 32
    cfg.MOCO.SPLIT_BN = 2
    torch.manual_seed(0)
    model = build_method(cfg).train()
    for net in (model.backbone, model.target_backbone):
        assert any(isinstance(m, SplitBatchNorm) for m in net.modules())
    x = torch.randn(8, 3, 8, 8)
    perm = torch.tensor([3, 6, 0, 5, 1, 7, 2, 4])
    monkeypatch.setattr(torch, "randperm", lambda n, device=None: perm.clone())
    target = copy.deepcopy(model.target_backbone), copy.deepcopy(model.target_projector)
    keys = model._keys(x)
    expected = F.normalize(target[1](target[0](x[perm])), dim=1)[torch.argsort(perm)]
    assert torch.allclose(keys, expected, atol=1e-5)
    # without the shuffle, keys would differ: BN groups are different sets of images
    plain = F.normalize(copy.deepcopy(target[1])(copy.deepcopy(target[0])(x)), dim=1)
    assert not torch.allclose(keys, plain, atol=1e-3)
