"""The linear transfer protocol: sweep on train / val, refit on train + val, test scored once."""
import pytest
import torch

from ssl_zoo.benchmark.transfer.lbfgs import fit_logistic, logistic_scores
from ssl_zoo.benchmark.transfer.linear import LinearTransferConfig, run_linear_transfer
from ssl_zoo.benchmark.transfer.metrics import mean_per_class_accuracy, voc11_map


def _blobs(n, g, num_classes=3, dim=6):
    y = torch.randint(num_classes, (n,), generator=g)
    centres = torch.eye(num_classes, dim, dtype=torch.float64) * 2.0
    return centres[y] + torch.randn(n, dim, generator=g, dtype=torch.float64), y


def test_chosen_lambda_and_refit_match_an_independent_computation():
    g = torch.Generator().manual_seed(0)
    (xtr, ytr), (xva, yva), (xte, yte) = _blobs(120, g), _blobs(60, g), _blobs(90, g)
    lams = [1e-2, 1.0, 100.0, 1000.0]
    row = run_linear_transfer({"train": xtr, "val": xva, "test": xte}, {"train": ytr, "val": yva, "test": yte}, 3,
                              "mean_per_class", LinearTransferConfig(lams, tol=1e-10, max_iter=2000))
    val = [mean_per_class_accuracy(logistic_scores(fit_logistic(xtr, ytr, l, 3, tol=1e-10, max_iter=2000), xva), yva)
           for l in lams]
    best = lams[max(range(len(lams)), key=lambda i: (val[i], i))]  # ties: the largest lambda
    assert row["best_lambda"] == best and row["val_score"] == pytest.approx(max(val))
    refit = fit_logistic(torch.cat([xtr, xva]), torch.cat([ytr, yva]), best, 3, tol=1e-10, max_iter=2000)
    assert row["score"] == pytest.approx(mean_per_class_accuracy(logistic_scores(refit, xte), yte))
    assert row["sklearn_C"] == pytest.approx(1 / best)


def test_multilabel_with_ignored_pairs():
    g = torch.Generator().manual_seed(1)
    x, y = _blobs(200, g, num_classes=2)
    t = torch.where(torch.stack([y == 0, y == 1], 1), 1, -1).to(torch.int8)
    t[::7, 0] = 0  # "difficult only": ignored in training and in the test AP
    feats = {"train": x[:100], "val": x[100:150], "test": x[150:]}
    targets = {"train": t[:100], "val": t[100:150], "test": t[150:]}
    row = run_linear_transfer(feats, targets, 2, "voc11_map", LinearTransferConfig([0.1, 10.0], tol=1e-9))
    mask = (torch.cat([t[:100], t[100:150]]) != 0).double()
    refit = fit_logistic(x[:150], (torch.cat([t[:100], t[100:150]]) > 0).double(), row["best_lambda"], 2, mask=mask,
                         tol=1e-9)
    assert row["score"] == pytest.approx(voc11_map(logistic_scores(refit, x[150:]), t[150:]), abs=1e-6)
    assert row["score"] > 90
