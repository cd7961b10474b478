"""Properties of gradient checking: finite differences agree with known derivatives and catch bugs."""

import torch

from nstlab import gradcheck, mlp


def test_numerical_gradient_of_a_quadratic_form_is_exact_to_round_off():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(4, 4, generator=g, dtype=torch.float64)
    x = torch.randn(4, generator=g, dtype=torch.float64)
    num = gradcheck.numerical_gradient(lambda v: v @ A @ v, x)
    assert gradcheck.relative_error(num, (A + A.T) @ x) < 1e-9


def test_numerical_gradient_keeps_shape_and_does_not_modify_theta():
    theta = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    num = gradcheck.numerical_gradient(lambda t: (t ** 3).sum(), theta)
    assert num.shape == (2, 3) and torch.equal(theta, torch.arange(6, dtype=torch.float64).reshape(2, 3))
    assert gradcheck.relative_error(num, 3 * theta ** 2) < 1e-9


def test_backprop_passes_the_gradient_check_and_a_broken_gradient_fails_it():
    params = mlp.init_params([3, 4, 2], seed=1)
    g = torch.Generator().manual_seed(1)
    X, T = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.rand(5, 2, generator=g, dtype=torch.float64)
    num = gradcheck.network_numerical_gradients(params, X, T, activation="tanh")
    good = mlp.backward(params, X, T, activation="tanh")
    assert gradcheck.max_relative_error(good, num) < 1e-7
    broken = [(dW, db) for dW, db in good[:-1]] + [(good[-1][0] * 2, good[-1][1])]  # a forgotten factor 1/2
    assert gradcheck.max_relative_error(broken, num) > 0.1


def test_relative_error_is_symmetric_and_zero_for_equal_inputs():
    a, b = torch.tensor([1.0, 2.0]), torch.tensor([1.5, 2.0])
    assert gradcheck.relative_error(a, b) == gradcheck.relative_error(b, a) > 0
    assert gradcheck.relative_error(torch.zeros(3), torch.zeros(3)) == 0.0


def test_numerical_gradient_works_on_a_non_contiguous_theta():
    """A transposed weight matrix is a view with swapped strides; the gradient must still come back right."""
    theta = torch.arange(6, dtype=torch.float64).reshape(2, 3).T  # (3, 2), not contiguous
    weights = torch.arange(6, dtype=torch.float64).reshape(3, 2)
    num = gradcheck.numerical_gradient(lambda t: (t * weights).sum(), theta)
    assert gradcheck.relative_error(num, weights) < 1e-9
