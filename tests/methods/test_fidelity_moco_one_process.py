"""MoCo in one process (issue #12 item 6): shuffling BN is emulated by default, and said so.

The official ``main_moco.py`` raises without DDP; its CIFAR-10 demo emulates shuffling BN
with ``SplitBatchNorm(bn_splits=8)``: BN statistics per group of samples, i.e. per
simulated device. Here ``MOCO.SPLIT_BN -1`` (auto) does that with 8 groups in one process.
"""
import logging
import os

import pytest
import torch

from ssl_zoo.config import get_cfg
from ssl_zoo.modeling.batchnorm import SplitBatchNorm
from ssl_zoo.modeling.method import build_method
from ssl_zoo_methods.moco import resolve_split_bn

torch.set_num_threads(1)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cfg(*overrides):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(ROOT, "configs/mocov2/r50_200ep.yaml"))
    cfg.merge_from_list(["MODEL.BACKBONE.NAME", "resnet18", "MODEL.BACKBONE.BASE_WIDTH", 8,
                         "MOCO.PROJECTOR_HIDDEN_DIM", 32, "MOCO.QUEUE_SIZE", 64, *overrides])
    return cfg


def test_default_one_process_emulates_shuffling_bn_and_logs_it(caplog):
    with caplog.at_level(logging.WARNING):
        model = build_method(_cfg())  # IMS_PER_BATCH 256, one process
    assert model.split_bn == 8
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns and all(isinstance(m, SplitBatchNorm) and m.num_splits == 8 for m in bns)
    assert any("shuffling BN emulated with 8" in r.getMessage() for r in caplog.records)


def test_split_bn_statistics_are_per_group():
    """Per group of interleaved samples (sample i in group i % G, the demo's view(-1, C*G, ...))."""
    model = build_method(_cfg())
    bn = model.backbone.bn1
    x = torch.randn(16, bn.num_features, 3, 3)
    y = bn(x)
    for g in range(8):
        xs = x[g::8]
        want = (xs - xs.mean((0, 2, 3), keepdim=True)) / torch.sqrt(xs.var((0, 2, 3), unbiased=False, keepdim=True)
                                                                    + bn.eps)
        torch.testing.assert_close(y[g::8], want * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1),
                                   rtol=1e-4, atol=1e-4)


def test_explicit_off_warns(caplog):
    with caplog.at_level(logging.WARNING):
        model = build_method(_cfg("MOCO.SPLIT_BN", 0))
    assert model.split_bn == 0
    assert any("no shuffling BN" in r.getMessage() for r in caplog.records)


def test_several_processes_use_real_shuffling_and_bad_splits_are_refused():
    assert resolve_split_bn(-1, True, world_size=4, per_process_batch=64) == 0
    assert resolve_split_bn(-1, False, world_size=1, per_process_batch=64) == 0
    assert resolve_split_bn(4, True, world_size=1, per_process_batch=64) == 4
    with pytest.raises(ValueError, match="MOCO.SPLIT_BN 8 must divide the per-process batch 12"):
        build_method(_cfg("SOLVER.IMS_PER_BATCH", 12))
    with pytest.raises(ValueError, match="MOCO.SPLIT_BN"):
        resolve_split_bn(1, True, world_size=1, per_process_batch=64)
