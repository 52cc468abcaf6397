"""AllReduceSyncBatchNorm: equal to BatchNorm single-process, and over 2 gloo processes
equal to one BatchNorm over the concatenated batch (outputs, gradients, running stats)."""
import copy
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ssl_zoo.modeling.batchnorm import AllReduceSyncBatchNorm, convert_sync_batchnorm
from ssl_zoo.engine.launch import find_free_port

torch.set_num_threads(1)

# Rows of the full batch held by each of the 2 ranks (uneven on purpose: the global
# count, not the world size, must weight each rank's statistics).
SPLITS = {"bn2d": (3, 5), "bn1d": (4, 4), "model": (4, 4)}


def _inputs():
    g = torch.Generator().manual_seed(0)
    bn2d = [(torch.randn(8, 3, 4, 5, generator=g, dtype=torch.float64) * 2 + 1,
             torch.randn(8, 3, 4, 5, generator=g, dtype=torch.float64)) for _ in range(2)]
    bn1d = [(torch.randn(8, 6, generator=g, dtype=torch.float64) - 3,
             torch.randn(8, 6, generator=g, dtype=torch.float64)) for _ in range(2)]
    model_x = torch.randn(8, 3, 6, 6, generator=g)
    return bn2d, bn1d, model_x


def _bn2d():
    torch.manual_seed(1)
    m = nn.BatchNorm2d(3, momentum=0.3).double()
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-1, 1)
    return m


def _bn1d():
    torch.manual_seed(2)
    m = nn.BatchNorm1d(6, momentum=None).double()  # cumulative moving average
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5)
    return m


def _model():
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 5), nn.BatchNorm1d(5)
    )


def _shard(t, name, rank):
    a, b = SPLITS[name]
    return t[:a] if rank == 0 else t[a:a + b]


def _run_layer(bn, data, name, rank):
    """Two training steps; returns per-step (y, x.grad) and final state and grads (summed over steps)."""
    outs = []
    for x, gy in data:
        x = _shard(x, name, rank).clone().requires_grad_(True)
        y = bn(x)
        (y * _shard(gy, name, rank)).sum().backward()
        outs.append((y.detach(), x.grad))
    grads = {k: p.grad.clone() for k, p in bn.named_parameters()}
    return {"outs": outs, "grads": grads, "state": copy.deepcopy(bn.state_dict())}


def _worker(rank, port, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        bn2d_data, bn1d_data, model_x = _inputs()
        res = {}
        res["bn2d"] = _run_layer(convert_sync_batchnorm(_bn2d()), bn2d_data, "bn2d", rank)
        res["bn1d"] = _run_layer(convert_sync_batchnorm(_bn1d()), bn1d_data, "bn1d", rank)
        model = convert_sync_batchnorm(_model())
        assert sum(isinstance(m, AllReduceSyncBatchNorm) for m in model.modules()) == 2
        model(_shard(model_x, "model", rank)).square().sum().backward()
        res["model"] = {
            "grads": {k: p.grad for k, p in model.named_parameters()},
            "state": model.state_dict(),
        }
        torch.save(res, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()



def _ref_layer(bn, data):
    outs = []
    for x, gy in data:
        x = x.clone().requires_grad_(True)
        y = bn(x)
        (y * gy).sum().backward()
        outs.append((y.detach(), x.grad))
    return outs, {k: p.grad for k, p in bn.named_parameters()}, bn.state_dict()


def _assert_state_close(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)


def test_two_process_gloo_equals_full_batch(tmp_path):
    mp.spawn(_worker, args=(find_free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    bn2d_data, bn1d_data, model_x = _inputs()
    for name, bn, data in (("bn2d", _bn2d(), bn2d_data), ("bn1d", _bn1d(), bn1d_data)):
        ref_outs, ref_grads, ref_state = _ref_layer(bn, data)
        for step, (ry, rgx) in enumerate(ref_outs):
            torch.testing.assert_close(torch.cat([r[name]["outs"][step][0] for r in ranks]), ry)
            torch.testing.assert_close(torch.cat([r[name]["outs"][step][1] for r in ranks]), rgx)
        for k, g in ref_grads.items():  # local weight grads, summed over ranks as DDP would
            torch.testing.assert_close(ranks[0][name]["grads"][k] + ranks[1][name]["grads"][k], g, msg=k)
        for r in ranks:  # every rank ends with the full-batch running statistics
            _assert_state_close(r[name]["state"], ref_state)
    model = _model()
    model(model_x).square().sum().backward()
    for k, p in model.named_parameters():
        got = ranks[0]["model"]["grads"][k] + ranks[1]["model"]["grads"][k]
        torch.testing.assert_close(got, p.grad, rtol=1e-4, atol=1e-5, msg=k)
    for r in ranks:
        for k, v in model.state_dict().items():
            torch.testing.assert_close(r["model"]["state"][k], v, rtol=1e-5, atol=1e-6, msg=k)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_single_process_equals_batchnorm2d(momentum):
    torch.manual_seed(0)
    ref = nn.BatchNorm2d(4, momentum=momentum)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-1, 1)
    ours = AllReduceSyncBatchNorm(4, momentum=momentum)
    ours.load_state_dict(ref.state_dict())
    for _ in range(2):
        x = torch.randn(5, 4, 3, 3) * 3 + 2
        gy = torch.randn_like(x)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = ours(xa), ref(xb)
        (ya * gy).sum().backward()
        (yb * gy).sum().backward()
        torch.testing.assert_close(ya, yb)
        torch.testing.assert_close(xa.grad, xb.grad)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad)
    torch.testing.assert_close(ours.bias.grad, ref.bias.grad)
    _assert_state_close(ours.state_dict(), ref.state_dict())
    ours.eval(), ref.eval()
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(ours(x), ref(x))


def test_convert_cpu_shares_parameters_and_buffers():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, eps=1e-3, momentum=0.05), nn.Sequential(nn.BatchNorm1d(4))
    )
    bn, bn1 = model[1], model[2][0]
    model[1].eval()
    converted = convert_sync_batchnorm(model)
    assert converted is model
    new = model[1]
    assert isinstance(new, AllReduceSyncBatchNorm) and isinstance(model[2][0], AllReduceSyncBatchNorm)
    assert new.weight is bn.weight and new.bias is bn.bias and new.running_mean is bn.running_mean
    assert (new.eps, new.momentum, new.training) == (1e-3, 0.05, False)
    assert model[2][0].running_var is bn1.running_var
    # a bare BN is returned converted
    assert isinstance(convert_sync_batchnorm(nn.BatchNorm2d(2)), AllReduceSyncBatchNorm)


class _BNAct(nn.BatchNorm2d):
    """Stand-in for timm's BatchNormAct2d: a subclass with extra behaviour."""


def test_convert_leaves_bn_subclasses_alone():
    m = nn.Sequential(_BNAct(3))
    convert_sync_batchnorm(m)
    assert type(m[0]) is _BNAct
