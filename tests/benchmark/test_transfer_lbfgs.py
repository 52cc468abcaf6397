"""The transfer L-BFGS solver against scikit-learn's LogisticRegression on a small real dataset (digits)."""
import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from ssl_zoo.benchmark.transfer.basis import FeatureBasis
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


def _badly_scaled(digits):
    """Digits with feature scales over four orders of magnitude (as a network's channels are)."""
    x, y = digits
    return torch.tensor(x) * torch.logspace(-2, 2, x.shape[1], dtype=torch.float64), torch.tensor(y)


def test_basis_is_an_exact_change_of_variables(digits):
    x, _ = _badly_scaled(digits)
    basis = FeatureBasis.of(x)
    v = basis.rotation
    torch.testing.assert_close(v.t() @ v, torch.eye(x.shape[1], dtype=x.dtype), atol=1e-10, rtol=0)
    w, b = torch.randn(10, x.shape[1], dtype=x.dtype), torch.randn(10, dtype=x.dtype)
    wr, br = basis.to_basis(w, b)
    torch.testing.assert_close(basis.rotated @ wr.t() + br, x @ w.t() + b)  # the same logits
    assert float(wr.pow(2).sum()) == pytest.approx(float(w.pow(2).sum()), rel=1e-10)  # the same penalty
    w2, b2 = basis.from_basis(wr, br)
    torch.testing.assert_close(w2, w) and torch.testing.assert_close(b2, b)


def test_gradient_in_the_basis_maps_back_to_the_autograd_gradient(digits):
    x, y = _badly_scaled(digits)
    basis = FeatureBasis.of(x)
    w = (0.01 * torch.randn(10, x.shape[1], dtype=x.dtype)).requires_grad_(True)
    b = torch.randn(10, dtype=x.dtype).requires_grad_(True)
    lam = 3.0
    j = (torch.nn.functional.cross_entropy(x @ w.t() + b, y, reduction="sum") + 0.5 * lam * w.pow(2).sum()) / len(y)
    j.backward()
    # the same objective written from scratch in the basis, differentiated by autograd there
    wr, br = [t.detach().requires_grad_(True) for t in basis.to_basis(w.detach(), b.detach())]
    jr = (torch.nn.functional.cross_entropy(basis.rotated @ wr.t() + br, y, reduction="sum")
          + 0.5 * lam * wr.pow(2).sum()) / len(y)
    jr.backward()
    back = basis.original_gradient(torch.cat([wr.grad, br.grad[:, None]], 1))
    torch.testing.assert_close(back[:, :-1], w.grad, atol=1e-10, rtol=1e-7)
    torch.testing.assert_close(back[:, -1], b.grad, atol=1e-10, rtol=1e-7)


@pytest.mark.parametrize("lam", [1.0, 100.0])
def test_preconditioned_solver_matches_sklearn_in_fewer_iterations(digits, lam):
    x, y = _badly_scaled(digits)
    # tol 1e-5: below it the float64 objective can no longer resolve steps along the 1e2-scaled features
    pre = fit_logistic(x, y, lam, 10, tol=1e-5, max_iter=20000, basis=FeatureBasis.of(x))
    plain = fit_logistic(x, y, lam, 10, tol=1e-5, max_iter=3 * pre.iterations)
    # newton-cg: scikit-learn's lbfgs itself stalls on these badly scaled features
    clf = LogisticRegression(C=sklearn_C(lam), solver="newton-cg", tol=1e-10, max_iter=1000).fit(x.numpy(), y.numpy())
    assert pre.grad_max <= 1e-5  # the stopping rule holds on the ORIGINAL gradient
    scale = max(1.0, np.abs(clf.coef_).max())
    np.testing.assert_allclose(pre.weight.numpy(), clf.coef_, atol=2e-3 * scale)
    probs = logistic_scores(pre, x).softmax(1).numpy()
    np.testing.assert_allclose(probs, clf.predict_proba(x.numpy()), atol=1e-3)
    assert plain.grad_max > 1e-5  # plain L-BFGS has not converged in 3x the iterations


def test_preconditioned_multilabel_matches_per_class_binary_sklearn(digits):
    x, y = _badly_scaled(digits)
    rng = np.random.default_rng(1)
    truth = np.stack([(y.numpy() == c) | (y.numpy() == c + 1) for c in range(3)], 1).astype(np.float64)
    mask = (rng.random(truth.shape) > 0.2).astype(np.float64)
    lam = 20.0
    fit = fit_logistic(x, torch.tensor(truth), lam, 3, mask=torch.tensor(mask), tol=1e-5, max_iter=20000,
                       basis=FeatureBasis.of(x))
    for c in range(3):
        keep = mask[:, c] > 0
        clf = LogisticRegression(C=sklearn_C(lam), solver="newton-cg", tol=1e-10, max_iter=1000).fit(x.numpy()[keep],
                                                                                                   truth[keep, c])
        np.testing.assert_allclose(fit.weight[c].numpy(), clf.coef_[0], atol=2e-3 * max(1, np.abs(clf.coef_).max()))
        assert float(fit.bias[c]) == pytest.approx(float(clf.intercept_[0]), abs=2e-3)


def test_preconditioned_sweep_chooses_like_the_plain_one(digits):
    x, y = torch.tensor(digits[0]), torch.tensor(digits[1])
    xtr, ytr, xva, yva = x[:400], y[:400], x[400:], y[400:]
    lams = regularisation_grid(6, 1e-1, 1e4)
    plain = sweep_regularisation(xtr, ytr, xva, yva, top1_accuracy, 10, lams, tol=1e-6, max_iter=5000,
                                 precondition=False)
    pre = sweep_regularisation(xtr, ytr, xva, yva, top1_accuracy, 10, lams, tol=1e-6, max_iter=5000)
    assert pre.best_lambda == plain.best_lambda
    assert max(abs(a - b) for a, b in zip(pre.val_scores, plain.val_scores)) <= 0.5  # one val image of 200


def test_features_wider_than_the_basis_limit_are_solved_plainly(monkeypatch, digits):
    import ssl_zoo.benchmark.transfer.basis as basis_mod
    x = torch.tensor(digits[0])
    assert basis_mod.basis_or_none(x, precondition=False) is None
    assert basis_mod.basis_or_none(x, precondition=True) is not None
    monkeypatch.setattr(basis_mod, "MAX_BASIS_DIM", x.shape[1] - 1)
    assert basis_mod.basis_or_none(x, precondition=True) is None
