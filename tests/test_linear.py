"""Properties of the linear unit: gradient descent reaches least squares; the gradient is the derivative."""

import pytest
import torch

from nstlab import linear
from nstlab.gradcheck import numerical_gradient


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_gradient_descent_reaches_the_closed_form_least_squares_solution(seed):
    X, y = linear.income_data(80, seed=seed, dtype=torch.float64)
    Z, _, _ = linear.standardize(X)
    w_star, b_star = linear.least_squares(Z, y)
    fit = linear.fit(Z, y, eta=0.5 / Z.shape[0], epochs=500)
    assert (fit.w - w_star).abs().max() < 1e-3 and abs(float(fit.b - b_star)) < 1e-3


def test_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(3)
    X, y = torch.randn(7, 4, generator=g, dtype=torch.float64), torch.randn(7, generator=g, dtype=torch.float64)
    w, b = torch.randn(4, generator=g, dtype=torch.float64), torch.tensor(0.3, dtype=torch.float64)
    dw, db = linear.gradient(X, y, w, b)
    torch.testing.assert_close(dw, numerical_gradient(lambda w_: linear.loss(X, y, w_, b), w))
    torch.testing.assert_close(db, numerical_gradient(lambda b_: linear.loss(X, y, w, b_), b))


def test_loss_is_zero_on_exact_fit_and_decreases_with_a_small_step():
    X, y = linear.income_data(30, seed=4, noise=0.0, dtype=torch.float64)
    w_star, b_star = linear.least_squares(X, y)
    assert float(linear.loss(X, y, w_star, b_star)) < 1e-12
    Z, _, _ = linear.standardize(X)
    w, b = torch.zeros(3, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    w1, b1 = linear.gd_step(Z, y, w, b, eta=0.01)
    assert linear.loss(Z, y, w1, b1) < linear.loss(Z, y, w, b)


def test_a_too_large_learning_rate_diverges():
    X, y = linear.income_data(50, seed=0, dtype=torch.float64)
    Z, _, _ = linear.standardize(X)
    fit = linear.fit(Z, y, eta=3.0 / Z.shape[0], epochs=30)
    assert fit.losses[-1] > 100 * fit.losses[0]


def test_sgd_gets_close_to_the_optimum_and_is_reproducible_by_seed():
    X, y = linear.income_data(60, seed=5, dtype=torch.float64)
    Z, _, _ = linear.standardize(X)
    best = linear.loss(Z, y, *linear.least_squares(Z, y))
    a = linear.fit(Z, y, eta=0.01, epochs=40, method="sgd", seed=1)
    b = linear.fit(Z, y, eta=0.01, epochs=40, method="sgd", seed=1)
    assert torch.equal(a.w, b.w)
    assert a.losses[-1] < 1.1 * best  # within 10 % of the minimum: SGD keeps jittering around it


def test_sgd_epoch_is_a_sequence_of_single_example_steps_in_the_seeded_order():
    X, y = linear.income_data(5, seed=2, dtype=torch.float64)
    w, b = torch.zeros(3, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    w_e, b_e = linear.sgd_epoch(X, y, w, b, eta=1e-3, seed=7)
    for n in torch.randperm(5, generator=torch.Generator().manual_seed(7)).tolist():
        w, b = linear.gd_step(X[n : n + 1], y[n : n + 1], w, b, eta=1e-3)
    torch.testing.assert_close((w_e, b_e), (w, b))


def test_functions_do_not_modify_inputs_and_income_data_is_seeded():
    X, y = linear.income_data(10, seed=0)
    X2, y2 = linear.income_data(10, seed=0)
    assert torch.equal(X, X2) and torch.equal(y, y2)
    assert not torch.equal(y, linear.income_data(10, seed=1)[1])
    w = torch.ones(3)
    linear.fit(X, y, eta=1e-5, epochs=3, w0=w)
    assert torch.equal(w, torch.ones(3))


def test_standardize_gives_zero_mean_unit_std_and_inverts():
    X, _ = linear.income_data(40, seed=0, dtype=torch.float64)
    Z, mu, s = linear.standardize(X)
    torch.testing.assert_close(Z.mean(0), torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(Z.std(0, correction=0), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(Z * s + mu, X)


def test_bad_inputs_raise_clear_errors():
    X, y = linear.income_data(4)
    with pytest.raises(ValueError, match="w should have shape"):
        linear.loss(X, y, torch.zeros(2), 0.0)
    with pytest.raises(ValueError, match="method"):
        linear.fit(X, y, eta=0.1, epochs=1, method="adam")
