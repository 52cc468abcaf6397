"""The transfer L-BFGS solver against scikit-learn's LogisticRegression on a small real dataset (digits)."""
import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from ssl_zoo.benchmark.transfer.lbfgs import (fit_logistic, logistic_scores, regularisation_grid, sklearn_C,
                                              sweep_regularisation)
from ssl_zoo.benchmark.transfer.metrics import top1_accuracy


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return x[:600] / 16.0, y[:600]


def test_grid_is_the_papers_45_values():
    g = regularisation_grid()
    assert len(g) == 45 and g[0] == pytest.approx(1e-6) and g[-1] == pytest.approx(1e5)
    ratios = [b / a for a, b in zip(g, g[1:])]
    assert max(ratios) == pytest.approx(min(ratios)) == pytest.approx(10 ** (11 / 44))


@pytest.mark.parametrize("lam", [0.6, 60.0])
def test_multinomial_matches_sklearn(digits, lam):
    x, y = digits
    fit = fit_logistic(torch.tensor(x), torch.tensor(y), lam, 10, tol=1e-9, max_iter=5000)
    clf = LogisticRegression(C=sklearn_C(lam), tol=1e-9, max_iter=5000).fit(x, y)
    np.testing.assert_allclose(fit.weight.numpy(), clf.coef_, atol=2e-4 * max(1.0, np.abs(clf.coef_).max()))
    # the intercept is not penalised by either (softmax is shift-invariant: compare centred biases)
    np.testing.assert_allclose(fit.bias.numpy() - fit.bias.numpy().mean(), clf.intercept_ - clf.intercept_.mean(),
                               atol=1e-3)
    probs = logistic_scores(fit, torch.tensor(x)).softmax(1).numpy()
    np.testing.assert_allclose(probs, clf.predict_proba(x), atol=1e-4)


def test_objective_is_sum_ce_plus_half_lambda_norm_reported_per_example(digits):
    x, y = digits
    lam = 30.0
    fit = fit_logistic(torch.tensor(x), torch.tensor(y), lam, 10, tol=1e-8)
    logits = logistic_scores(fit, torch.tensor(x))
    j = torch.nn.functional.cross_entropy(logits, torch.tensor(y), reduction="sum") + 0.5 * lam * fit.weight.pow(2).sum()
    assert fit.loss == pytest.approx(float(j) / len(y), rel=1e-9)
    assert fit.grad_max <= 1e-5  # converged (stopped by the tolerance on the change of J near 1e-8)


def test_bias_is_not_regularised():
    # one feature that carries no signal, imbalanced classes: a penalised bias would shrink toward 0
    x = torch.zeros(100, 1, dtype=torch.float64)
    y = torch.tensor([0] * 90 + [1] * 10)
    fit = fit_logistic(x, y, lam=1e5, num_classes=2, tol=1e-10)
    p = logistic_scores(fit, x).softmax(1)[0]
    assert float(p[0]) == pytest.approx(0.9, abs=1e-6)


def test_multilabel_matches_per_class_binary_sklearn(digits):
    x, y = digits
    rng = np.random.default_rng(0)
    truth = np.stack([(y == c) | (y == c + 1) for c in range(3)], 1).astype(np.float64)
    mask = (rng.random(truth.shape) > 0.2).astype(np.float64)  # ignored pairs (VOC "difficult")
    lam = 5.0
    fit = fit_logistic(torch.tensor(x), torch.tensor(truth), lam, 3, mask=torch.tensor(mask), tol=1e-9, max_iter=5000)
    for c in range(3):
        keep = mask[:, c] > 0
        clf = LogisticRegression(C=sklearn_C(lam), tol=1e-9, max_iter=5000).fit(x[keep], truth[keep, c])
        np.testing.assert_allclose(fit.weight[c].numpy(), clf.coef_[0], atol=2e-4 * max(1, np.abs(clf.coef_).max()))
        assert float(fit.bias[c]) == pytest.approx(float(clf.intercept_[0]), abs=1e-3)


def test_warm_started_path_reaches_the_cold_solutions(digits):
    x, y = torch.tensor(digits[0]), torch.tensor(digits[1])
    lams = [600.0, 60.0, 6.0]
    res = sweep_regularisation(x, y, x, y, top1_accuracy, 10, lams, tol=1e-9, max_iter=5000, keep_fits=True)
    assert res.lambdas == sorted(lams)
    for lam, warm in zip(res.lambdas, res.fits):
        cold = fit_logistic(x, y, lam, 10, tol=1e-9, max_iter=5000)
        torch.testing.assert_close(warm.weight, cold.weight, atol=1e-4, rtol=0)


def test_sweep_picks_best_validation_and_ties_go_to_largest_lambda(digits):
    x, y = torch.tensor(digits[0]), torch.tensor(digits[1])
    xtr, ytr, xva, yva = x[:400], y[:400], x[400:], y[400:]
    lams = [1e-2, 1.0, 1e2, 1e4, 1e6]
    res = sweep_regularisation(xtr, ytr, xva, yva, top1_accuracy, 10, lams, keep_fits=True)
    assert res.val_scores[res.best_index] == max(res.val_scores)
    last_best = max(i for i, s in enumerate(res.val_scores) if s == max(res.val_scores))
    assert res.best_index == last_best
    # each score is the metric of that lambda's own fit on the validation split
    for s, f in zip(res.val_scores, res.fits):
        assert s == pytest.approx(top1_accuracy(logistic_scores(f, xva), yva))
    assert res.val_scores[-1] < res.val_scores[res.best_index]  # 1e6 is far too strong on digits


def test_sklearn_C_mapping():
    assert sklearn_C(1e-3) == pytest.approx(1e3) and math.isclose(sklearn_C(4.0), 0.25)
