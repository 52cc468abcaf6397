"""EMA target update and momentum schedules vs naive references."""
import copy
import math

import pytest
import torch
from torch import nn

from ssl_zoo.modeling.momentum import ema_update_
from ssl_zoo.solver.schedules import (MOMENTUM_SCHEDULE_REGISTRY, build_momentum_schedule, constant_momentum,
                                      cosine_momentum)

torch.set_num_threads(1)


def _net():
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def test_ema_update_matches_naive_loop_and_leaves_buffers():
    torch.manual_seed(0)
    online, target = _net(), _net()  # different initialisations, as in BYOL's code
    target[1].running_mean.fill_(0.5)
    target[1].running_var.fill_(2.0)
    target[1].num_batches_tracked.fill_(7)
    online[1].running_mean.fill_(-3.0)
    buffers_before = copy.deepcopy(dict(target.named_buffers()))
    naive = copy.deepcopy(target)
    tau = 0.9
    with torch.no_grad():
        for pt, po in zip(naive.parameters(), online.parameters()):
            pt.copy_(tau * pt + (1 - tau) * po)
    online_before = copy.deepcopy(online.state_dict())
    ema_update_(target, online, tau)
    for (k, a), b in zip(target.named_parameters(), naive.parameters()):
        torch.testing.assert_close(a, b, msg=k)
        assert a.requires_grad
    for k, v in target.named_buffers():
        assert torch.equal(v, buffers_before[k]), k
    for k, v in online.state_dict().items():
        assert torch.equal(v, online_before[k]), k


def test_ema_update_extremes():
    torch.manual_seed(0)
    online, target = _net(), _net()
    frozen = copy.deepcopy(target.state_dict())
    ema_update_(target, online, 1.0)
    for k, v in target.state_dict().items():
        assert torch.equal(v, frozen[k])
    ema_update_(target, online, 0.0)
    for a, b in zip(target.parameters(), online.parameters()):
        torch.testing.assert_close(a, b)


def test_ema_update_mismatched_networks():
    with pytest.raises(ValueError):
        ema_update_(nn.Linear(2, 2), _net(), 0.5)


def test_cosine_schedule_values():
    base, k_max = 0.996, 1000
    assert cosine_momentum(0, k_max, base) == pytest.approx(base)
    assert cosine_momentum(k_max // 2, k_max, base) == pytest.approx(1 - (1 - base) / 2)
    assert cosine_momentum(k_max, k_max, base) == pytest.approx(1.0)
    k = 123
    assert cosine_momentum(k, k_max, base) == pytest.approx(1 - (1 - base) * (math.cos(math.pi * k / k_max) + 1) / 2)
    assert cosine_momentum(2 * k_max, k_max, base) == pytest.approx(1.0)  # clamped past the end
    values = [cosine_momentum(s, k_max, base) for s in range(0, k_max + 1, 50)]
    assert values == sorted(values)


@pytest.mark.parametrize("name", MOMENTUM_SCHEDULE_REGISTRY.names())
def test_every_momentum_schedule_starts_at_base_stays_in_range_and_is_pure(name):
    """Any tau schedule: tau(0) = base, base <= tau <= 1, non-decreasing, and a pure function of the step
    (a resumed run recomputes the same tau)."""
    fn = MOMENTUM_SCHEDULE_REGISTRY.get(name)
    base, total = 0.99, 50
    values = [fn(k, total, base) for k in range(total + 1)]
    assert values[0] == pytest.approx(base)
    assert all(base - 1e-12 <= v <= 1.0 + 1e-12 for v in values) and values == sorted(values)
    assert values == [fn(k, total, base) for k in range(total + 1)]


def test_constant_schedule_and_builder():
    assert constant_momentum(0, 10, 0.99) == 0.99 == constant_momentum(10, 10, 0.99)
    schedule = build_momentum_schedule("cosine", 0.99)
    assert [schedule(k, 20) for k in (0, 7, 20)] == [cosine_momentum(k, 20, 0.99) for k in (0, 7, 20)]
    assert build_momentum_schedule("constant", 0.999)(5, 10) == 0.999
