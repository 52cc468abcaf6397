"""Fine-tuning protocol pieces: BN momentum translation, the (lr, wd) grid, wd / lr, masked multi-label loss."""
import math

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from ssl_zoo.benchmark.transfer import finetune as FT
from ssl_zoo.config import get_cfg
from ssl_zoo.benchmark.transfer.task import finetune_config_from_cfg


def test_bn_momentum_is_the_torch_translation_of_tf_decay():
    for s in (10, 50, 176, 1000):
        tf_decay = max(1 - 10 / s, 0.9)  # PROTOCOLS.md s.5 (TF: running = decay * running + (1 - decay) * batch)
        assert FT.bn_momentum(s) == pytest.approx(1 - tf_decay)  # torch: running = (1 - m) * running + m * batch
    assert FT.bn_momentum(176) == pytest.approx(10 / 176)  # CIFAR-10 train: 45,000 / 256 -> 176 steps per epoch


def test_full_grid_is_7_lrs_by_8_wds_and_small_budget_is_labelled():
    cfg = get_cfg()
    full, small = finetune_config_from_cfg(cfg), finetune_config_from_cfg(cfg, "small")
    lrs = sorted({lr for lr, _ in FT.finetune_grid(full)})
    assert len(FT.finetune_grid(full)) == 56 and full.steps == 20000 and full.batch_size == 256
    assert lrs[0] == pytest.approx(1e-4) and lrs[-1] == pytest.approx(0.1)
    assert all(b / a == pytest.approx(10 ** 0.5, rel=1e-4) for a, b in zip(lrs, lrs[1:]))
    assert sorted(full.weight_decays)[:2] == [0.0, pytest.approx(1e-6)] and max(full.weight_decays) == pytest.approx(1e-3)
    assert small.budget == "small" and len(FT.finetune_grid(small)) < 56 and small.steps < 20000
    with pytest.raises(ValueError, match="--budget"):
        finetune_config_from_cfg(cfg, "tiny")


class _Toy(Dataset):
    def __init__(self, n):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, 8, 8, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], i


def test_sgd_gets_wd_over_lr_nesterov_and_bn_momentum(monkeypatch):
    seen = {}

    class Recording(torch.optim.SGD):
        def __init__(self, params, **kw):
            seen.update(kw)
            super().__init__(params, **kw)

    monkeypatch.setattr(FT.torch.optim, "SGD", Recording)
    backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    c = FT.FinetuneConfig(lrs=(0.1,), weight_decays=(1e-4,), steps=3, batch_size=8)
    model = FT.train_finetune(backbone, 4, 2, _Toy(40), torch.arange(40) % 2, 0.1, 1e-4, c, torch.device("cpu"))
    assert seen["weight_decay"] == pytest.approx(1e-3) and seen["nesterov"] and seen["momentum"] == 0.9
    assert model.backbone[1].momentum == pytest.approx(0.1)  # 40 / 8 = 5 steps per epoch -> min(10/5, 0.1)
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())  # a copy is fine-tuned
    assert not torch.equal(model.backbone[0].weight, backbone[0].weight)


def test_multilabel_loss_skips_ignored_pairs():
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    y = torch.tensor([[1, 0], [-1, 1]], dtype=torch.int8)  # (0, 1) ignored
    bce = lambda z, t: -(t * math.log(1 / (1 + math.exp(-z))) + (1 - t) * math.log(1 - 1 / (1 + math.exp(-z))))
    expected = (bce(2.0, 1) + bce(0.5, 0) + bce(3.0, 1)) / 3
    assert float(FT._loss(logits, y)) == pytest.approx(expected)
