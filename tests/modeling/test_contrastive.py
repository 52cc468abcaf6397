"""Losses of SimCLR, MoCo, SimSiam, Barlow Twins and BYOL's unified objective against naive
per-pair references; the gathered multi-process versions (2 gloo processes) against the
single-process loss on the full batch, gradients included; the MoCo queue at wrap-around."""
import math
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ssl_zoo.modeling.losses import (BarlowTwinsLoss, BYOLLoss, InfoNCELoss, NegativeCosineLoss, NTXentLoss,
                                     UnifiedLoss)
from ssl_zoo.modeling.queue import KeyQueue
from ssl_zoo.utils.dist_ops import all_gather_with_grad, batch_shuffle, batch_unshuffle
from ssl_zoo.engine.launch import find_free_port

torch.set_num_threads(1)


def _cos(a, b):
    return float(a @ b) / (a.norm().item() * b.norm().item())


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ---------------------------------------------------------------------------- naive references


def naive_ntxent(z1, z2, t):
    """SimCLR Eq. 1, one pair at a time: views k and k+N of image k."""
    z = torch.cat([z1, z2])
    n2 = z.shape[0]
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        pos = (i + n) % n2
        den = sum(math.exp(_cos(z[i], z[k]) / t) for k in range(n2) if k != i)
        total += -math.log(math.exp(_cos(z[i], z[pos]) / t) / den)
    return total / n2


def naive_barlow(z1, z2, lambd, eps=1e-5):
    n, d = z1.shape

    def standardise(z):
        cols = []
        for j in range(d):
            m = sum(z[b, j].item() for b in range(n)) / n
            v = sum((z[b, j].item() - m) ** 2 for b in range(n)) / n
            cols.append([(z[b, j].item() - m) / math.sqrt(v + eps) for b in range(n)])
        return cols  # [d][n]

    a, b = standardise(z1), standardise(z2)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(a[i][k] * b[j][k] for k in range(n)) / n
            loss += (1 - c) ** 2 if i == j else lambd * c * c
    return loss


# ---------------------------------------------------------------------------- single process


def test_ntxent_matches_naive_reference():
    z1, z2 = _rand(6, 5, seed=1), _rand(6, 5, seed=2)
    for t in (0.1, 0.5):
        assert float(NTXentLoss(t)(z1, z2)) == pytest.approx(naive_ntxent(z1, z2, t), rel=1e-6)


def test_infonce_matches_naive_reference():
    q, k, queue = _rand(4, 3, seed=1), _rand(4, 3, seed=2), torch.nn.functional.normalize(_rand(7, 3, seed=3), dim=1)
    t = 0.2
    ref = 0.0
    for i in range(4):
        pos = math.exp(_cos(q[i], k[i]) / t)
        neg = sum(math.exp(_cos(q[i], queue[j]) / t) for j in range(7))
        ref += -math.log(pos / (pos + neg))
    assert float(InfoNCELoss(t)(q, k, queue)) == pytest.approx(ref / 4, rel=1e-6)


def test_barlow_twins_matches_naive_reference():
    z1, z2 = _rand(8, 4, seed=1), _rand(8, 4, seed=2)
    assert float(BarlowTwinsLoss(0.0051)(z1, z2)) == pytest.approx(naive_barlow(z1, z2, 0.0051), rel=1e-6)


def test_simsiam_negative_cosine_matches_naive_and_stops_gradient():
    p1, p2 = _rand(5, 3, seed=1).requires_grad_(), _rand(5, 3, seed=2).requires_grad_()
    z1, z2 = _rand(5, 3, seed=3).requires_grad_(), _rand(5, 3, seed=4).requires_grad_()
    ref = sum(-0.5 * _cos(p1[i].detach(), z2[i].detach()) - 0.5 * _cos(p2[i].detach(), z1[i].detach())
              for i in range(5)) / 5
    loss = NegativeCosineLoss()(p1, p2, z1, z2)
    assert float(loss.detach()) == pytest.approx(ref, rel=1e-6)
    loss.backward()
    assert z1.grad is None and z2.grad is None and p1.grad.abs().sum() > 0


def test_unified_beta0_is_byol_loss():
    p1, p2, z1, z2 = (_rand(6, 4, seed=s).requires_grad_() for s in range(4))
    byol = BYOLLoss()(p1, p2, z1, z2)
    grads_byol = torch.autograd.grad(byol, [p1, p2])
    unified = UnifiedLoss(alpha=0.1, beta=0.0)(p1, p2, z1.detach(), z2.detach())
    grads_unified = torch.autograd.grad(unified, [p1, p2])
    assert float(unified.detach()) == pytest.approx(float(byol.detach()), rel=1e-12)
    for a, b in zip(grads_byol, grads_unified):
        torch.testing.assert_close(a, b)


def test_unified_beta1_without_predictor_and_target_is_simclr():
    """phi = psi = z_theta, beta = 1: 2 - InfoNCE summed over directions = 4 + 4 alpha NTXent(T = alpha)."""
    alpha = 0.1
    z1, z2 = _rand(6, 4, seed=1).requires_grad_(), _rand(6, 4, seed=2).requires_grad_()
    unified = UnifiedLoss(alpha=alpha, beta=1.0)(z1, z2, z1, z2)
    simclr = NTXentLoss(alpha)(z1, z2)
    assert float(unified.detach()) == pytest.approx(4 + 4 * alpha * float(simclr.detach()), rel=1e-10)
    g_u = torch.autograd.grad(unified, [z1, z2])
    g_s = torch.autograd.grad(4 * alpha * NTXentLoss(alpha)(z1, z2), [z1, z2])
    for a, b in zip(g_u, g_s):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("size,batches", [(8, [3, 3, 3, 3]), (5, [2, 4, 1, 3]), (4, [6]), (7, [7, 7])])
def test_queue_wraps_around_like_one_by_one_enqueue(size, batches):
    queue = KeyQueue(dim=2, size=size, gather_distributed=False)
    naive = [row.clone() for row in queue.keys]
    ptr, count = 0, 0
    for b in batches:
        keys = _rand(b, 2, seed=count).float()
        for row in keys:  # FIFO one key at a time: overwrite the oldest
            naive[ptr] = row
            ptr = (ptr + 1) % size
        count += b
        queue.enqueue(keys)
        torch.testing.assert_close(queue.keys, torch.stack(naive))
        assert int(queue.ptr) == ptr


# ---------------------------------------------------------------------------- 2 gloo processes



def _losses():
    return {
        "ntxent": lambda a, b: NTXentLoss(0.2)(a, b),
        "barlow": lambda a, b: BarlowTwinsLoss(0.0051)(a, b),
        "unified": lambda a, b: UnifiedLoss(alpha=0.3, beta=1.0)(a, b, a, b),
    }


def _dist_worker(rank, world, port, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        z1_full, z2_full = _rand(8, 5, seed=10), _rand(8, 5, seed=11)
        b = z1_full.shape[0] // world
        rows = slice(rank * b, (rank + 1) * b)
        result = {}
        for name, fn in _losses().items():
            z1 = z1_full[rows].clone().requires_grad_()
            z2 = z2_full[rows].clone().requires_grad_()
            loss = fn(z1, z2)
            loss.backward()
            result[name] = (loss.detach(), z1.grad, z2.grad)
        x = torch.arange(b * 3, dtype=torch.float64).view(b, 3) + 100 * rank
        gathered = all_gather_with_grad(x)
        shuffled, idx = batch_shuffle(x)
        result["gather"] = gathered
        result["shuffle"] = (shuffled, batch_unshuffle(shuffled, idx), x)
        q = KeyQueue(dim=3, size=5)
        q.enqueue(x.float())  # 2 x 4 keys gathered: wraps around a queue of 5
        result["queue"] = (q.keys.clone(), int(q.ptr))
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_gathered_losses_equal_single_process_full_batch(tmp_path):
    world = 2
    mp.spawn(_dist_worker, args=(world, find_free_port(), str(tmp_path)), nprocs=world, join=True)
    res = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]
    z1_full, z2_full = _rand(8, 5, seed=10), _rand(8, 5, seed=11)
    b = 8 // world
    for name, fn in _losses().items():
        z1, z2 = z1_full.clone().requires_grad_(), z2_full.clone().requires_grad_()
        full = fn(z1, z2)
        full.backward()
        # DDP averages gradients (and we average losses) over the ranks
        assert float(sum(r[name][0] for r in res) / world) == pytest.approx(float(full.detach()), rel=1e-10), name
        for r in range(world):
            rows = slice(r * b, (r + 1) * b)
            torch.testing.assert_close(res[r][name][1] / world, z1.grad[rows], msg=name)
            torch.testing.assert_close(res[r][name][2] / world, z2.grad[rows], msg=name)
    ntx = NTXentLoss(0.2)(z1_full, z2_full)
    assert float(ntx) == pytest.approx(naive_ntxent(z1_full, z2_full, 0.2), rel=1e-6)
    # all_gather_with_grad in rank order; shuffle is a permutation of the global batch, undone exactly
    xs = [torch.arange(b * 3, dtype=torch.float64).view(b, 3) + 100 * r for r in range(world)]
    shuffled = torch.cat([r["shuffle"][0] for r in res])
    assert sorted(shuffled[:, 0].tolist()) == sorted(torch.cat(xs)[:, 0].tolist())
    for r in range(world):
        torch.testing.assert_close(res[r]["gather"], torch.cat(xs))
        torch.testing.assert_close(res[r]["shuffle"][1], res[r]["shuffle"][2])
    # both ranks enqueued the same 8 gathered keys: queue identical, last 5 in ring order
    keys0, ptr0 = res[0]["queue"]
    torch.testing.assert_close(keys0, res[1]["queue"][0])
    allk = torch.cat(xs).float()
    assert ptr0 == 8 % 5
    for j in range(3, 8):
        torch.testing.assert_close(keys0[j % 5], allk[j])
