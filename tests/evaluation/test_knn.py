"""kNN classifier and collapse signals against naive references."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssl_zoo.evaluation.collapse import effective_rank, normalized_std
from ssl_zoo.evaluation.features import extract_features
from ssl_zoo.evaluation.knn import knn_accuracy, knn_classify

torch.set_num_threads(1)


def naive_knn_scores(train_f, train_y, test_f, k, T, C):
    """One query at a time, plain Python loops (Wu et al. 2018 weighted vote)."""
    out = torch.zeros(len(test_f), C)
    for q in range(len(test_f)):
        sims = [(float(test_f[q] @ train_f[i]), i) for i in range(len(train_f))]
        sims.sort(key=lambda t: -t[0])
        for s, i in sims[:k]:
            out[q, int(train_y[i])] += math.exp(s / T)
    return out


def _random_feats(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)


@pytest.mark.parametrize("k", [1, 5, 40, 500])  # 500 > N: clipped to N
def test_knn_classify_matches_naive(k):
    train_f, test_f = _random_feats(60, 8, 0), _random_feats(13, 8, 1)
    train_y = torch.randint(0, 4, (60,), generator=torch.Generator().manual_seed(2))
    got = knn_classify(train_f, train_y, test_f, k, 0.1, 4, chunk_size=5)  # chunks of 5 queries
    want = naive_knn_scores(train_f, train_y, test_f, min(k, 60), 0.1, 4)
    torch.testing.assert_close(got, want.float(), rtol=1e-5, atol=1e-5)


def test_knn_accuracy_top1_top5():
    train_f, test_f = _random_feats(80, 6, 3), _random_feats(30, 6, 4)
    train_y = torch.randint(0, 7, (80,), generator=torch.Generator().manual_seed(5))
    test_y = torch.randint(0, 7, (30,), generator=torch.Generator().manual_seed(6))
    acc = knn_accuracy(train_f, train_y, test_f, test_y, k=10, temperature=0.07, num_classes=7)
    scores = naive_knn_scores(train_f, train_y, test_f, 10, 0.07, 7)
    top1 = sum(int(scores[i].argmax() == test_y[i]) for i in range(30)) / 30 * 100
    top5 = sum(int(test_y[i] in scores[i].topk(5).indices) for i in range(30)) / 30 * 100
    assert acc["top1"] == pytest.approx(top1) and acc["top5"] == pytest.approx(top5)
    # a query equal to a bank sample of a well separated class is classified correctly
    acc = knn_accuracy(train_f, train_y, train_f, train_y, k=1, temperature=0.1)
    assert acc["top1"] == 100.0


def test_extract_features_eval_mode_in_order_and_restores_mode():
    net = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4))
    net.train()
    g = torch.Generator().manual_seed(0)
    loader = [(torch.randn(3, 5, generator=g), torch.tensor([0, 1, 2])) for _ in range(3)]
    feats, labels = extract_features(net, loader, torch.device("cpu"))
    assert feats.shape == (9, 4) and labels.tolist() == [0, 1, 2] * 3
    assert net.training  # restored
    net.eval()  # eval-mode forward (running BN statistics) is what was used, unnormalised
    with torch.no_grad():
        expected = torch.cat([net(x) for x, _ in loader])
    torch.testing.assert_close(feats, expected)


def test_extract_features_autocast_and_empty():
    net = nn.Linear(5, 4)
    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(1))
    feats, _ = extract_features(net, [(x, torch.zeros(6))], torch.device("cpu"), amp_dtype=torch.bfloat16)
    assert feats.dtype == torch.float32
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = net(x).float()
    torch.testing.assert_close(feats, expected)
    with pytest.raises(ValueError, match="no batch"):
        extract_features(net, [], torch.device("cpu"))


def test_collapse_signals():
    d = 64
    healthy = torch.randn(4096, d, generator=torch.Generator().manual_seed(0))
    assert normalized_std(healthy).item() == pytest.approx(1 / math.sqrt(d), rel=0.05)
    collapsed = torch.randn(1, d).repeat(100, 1) + 1e-6 * torch.randn(100, d)
    assert normalized_std(collapsed).item() < 1e-4
    # effective rank: rank-one -> 1; d orthonormal rows -> d
    assert effective_rank(torch.randn(50, 1) @ torch.randn(1, d)).item() == pytest.approx(1.0, abs=0.01)
    assert effective_rank(torch.eye(d)).item() == pytest.approx(d, rel=1e-3)
