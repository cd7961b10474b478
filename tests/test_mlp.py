"""Properties of the hand-written network: backprop equals autograd, and it learns XOR and the digits."""

import pytest
import torch

from nstlab import mlp
from nstlab.data import digits, logic_gate
from nstlab.gradcheck import max_relative_error


def _random_problem(seed):
    g = torch.Generator().manual_seed(seed)
    n_layers = int(torch.randint(1, 4, (1,), generator=g))
    sizes = torch.randint(1, 7, (n_layers + 1,), generator=g).tolist()
    n = int(torch.randint(1, 9, (1,), generator=g))
    X = torch.randn(n, sizes[0], generator=g, dtype=torch.float64)
    T = torch.rand(n, sizes[-1], generator=g, dtype=torch.float64)
    params = [(W * 2, torch.randn(b.shape, generator=g, dtype=torch.float64))
              for W, b in mlp.init_params(sizes, seed=seed)]
    return params, X, T


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
@pytest.mark.parametrize("seed", range(6))
def test_backprop_matches_torch_autograd_in_float64_for_random_shapes(seed, activation):
    params, X, T = _random_problem(seed)
    grads = mlp.backward(params, X, T, activation=activation)
    assert max_relative_error(grads, mlp.autograd_gradients(params, X, T, activation=activation)) < 1e-6


def test_torch_copy_computes_the_same_function():
    params, X, _ = _random_problem(11)
    torch.testing.assert_close(mlp.to_torch(params)(X), mlp.forward(params, X)[1][-1])


def test_derivatives_match_autograd():
    z = torch.linspace(-6, 6, 25, dtype=torch.float64, requires_grad=True)
    for f, f_prime in mlp.ACTIVATIONS.values():
        (g,) = torch.autograd.grad(f(z).sum(), z)
        torch.testing.assert_close(f_prime(z.detach()), g)


def test_network_learns_xor_with_a_hidden_layer():
    X, y = logic_gate("xor")
    params, losses = mlp.train(mlp.init_params([2, 3, 1], seed=0), X.double(), y.double()[:, None],
                               epochs=2000, eta=2.0, batch_size=4)
    out = mlp.forward(params, X.double())[1][-1][:, 0]
    assert torch.equal((out > 0.5).double(), y.double()) and losses[-1] < losses[0]


def test_digit_network_reaches_95_percent_test_accuracy():
    d = digits(seed=0)
    X, Xt = d.x_train.flatten(1).double(), d.x_test.flatten(1).double()
    params, _ = mlp.train(mlp.init_params([64, 30, 10], seed=0), X, mlp.one_hot(d.y_train, 10),
                          epochs=10, eta=3.0, batch_size=10)
    assert mlp.accuracy(params, Xt, d.y_test) >= 0.95


def test_training_and_update_do_not_modify_the_parameters_passed_in():
    params, X, T = _random_problem(2)
    before = [(W.clone(), b.clone()) for W, b in params]
    mlp.train(params, X, T, epochs=2, eta=0.5)
    mlp.update(params, mlp.backward(params, X, T), eta=0.5)
    assert all(torch.equal(W, W0) and torch.equal(b, b0) for (W, b), (W0, b0) in zip(params, before, strict=True))


def test_output_delta_is_zero_at_the_target_and_has_the_sign_of_the_error():
    z = torch.tensor([[0.3, -1.0]], dtype=torch.float64)
    y_hat = mlp.sigmoid(z)
    assert torch.equal(mlp.output_delta(z, y_hat, y_hat), torch.zeros_like(z))
    d = mlp.output_delta(z, y_hat, torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    assert d[0, 0] < 0 < d[0, 1]


def test_bad_inputs_raise_clear_errors():
    params = mlp.init_params([3, 2])
    with pytest.raises(ValueError, match="expects D_0 = 3"):
        mlp.forward(params, torch.zeros(4, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="activation should be"):
        mlp.forward(params, torch.zeros(4, 3, dtype=torch.float64), activation="relu")
    with pytest.raises(ValueError, match="shapes do not chain"):
        mlp.hidden_delta(torch.zeros(1, 2), torch.zeros(3, 4), torch.zeros(1, 4))


def test_softmax_matches_torch_and_survives_scores_that_overflow_exp():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(5, 4, generator=g, dtype=torch.float64) * 3
    torch.testing.assert_close(mlp.softmax(z), torch.softmax(z, dim=1))
    huge = torch.tensor([[1000.0, 999.0, 998.0], [-1000.0, -999.0, -1000.0]], dtype=torch.float64)
    p = mlp.softmax(huge)
    assert torch.isfinite(p).all()
    torch.testing.assert_close(p, torch.softmax(huge, dim=1))
    torch.testing.assert_close(p.sum(1), torch.ones(2, dtype=torch.float64))


def test_cross_entropy_is_torchs_summed_cross_entropy_and_its_gradient_is_softmax_minus_t():
    g = torch.Generator().manual_seed(4)
    z = (torch.randn(6, 5, generator=g, dtype=torch.float64) * 4).requires_grad_(True)
    labels = torch.randint(0, 5, (6,), generator=g)
    T = mlp.one_hot(labels, 5)
    C = mlp.cross_entropy(z, T)
    torch.testing.assert_close(C, torch.nn.functional.cross_entropy(z, labels, reduction="sum"))
    (dz,) = torch.autograd.grad(C, z)
    torch.testing.assert_close(dz, mlp.softmax(z.detach()) - T)


def test_cross_entropy_stays_finite_when_a_probability_rounds_to_zero():
    z = torch.tensor([[0.0, -800.0]], dtype=torch.float64)
    C = mlp.cross_entropy(z, torch.tensor([[0.0, 1.0]], dtype=torch.float64))
    torch.testing.assert_close(C, torch.tensor(800.0, dtype=torch.float64))


def test_train_averages_the_gradient_over_each_batch_including_a_short_last_one():
    """One epoch of batch size m equals plain steps with the batch's summed gradient times eta / m."""
    params, X, T = _random_problem(5)
    X, T = torch.cat([X] * 3)[:7], torch.cat([T] * 3)[:7]  # 7 examples: batches of 3, 3 and 1
    trained, losses = mlp.train(params, X, T, epochs=1, eta=0.7, batch_size=3, seed=9)
    order = torch.randperm(7, generator=torch.Generator().manual_seed(9))
    expected = params
    for batch in (order[:3], order[3:6], order[6:]):
        expected = mlp.update(expected, mlp.backward(expected, X[batch], T[batch]), eta=0.7 / len(batch))
    for (W, b), (We, be) in zip(trained, expected, strict=True):
        torch.testing.assert_close(W, We)
        torch.testing.assert_close(b, be)
    assert losses == [float(mlp.loss(expected, X, T)) / 7]


def test_bad_softmax_and_training_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"shape \(N, K\)"):
        mlp.softmax(torch.zeros(3))
    with pytest.raises(ValueError, match="z and T should both have shape"):
        mlp.cross_entropy(torch.zeros(2, 3), torch.zeros(2, 4))
    params, X, T = _random_problem(1)
    with pytest.raises(ValueError, match="batch_size should be at least 1"):
        mlp.train(params, X, T, epochs=1, eta=0.1, batch_size=0)
