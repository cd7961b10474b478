"""Tests of nstlab.optimisers: each update against torch.optim as the oracle, over several steps."""

import pytest
import torch

from nstlab import optimisers


def _quadratic_gradients(w: torch.Tensor) -> torch.Tensor:
    """The gradient of a fixed ill-conditioned quadratic ½ wᵀ A w, with A = diag(1, 10, 100) (float64)."""
    return torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64) * w


def _torch_trajectory(make_optimiser, w0: torch.Tensor, steps: int) -> list[torch.Tensor]:
    w = w0.clone().requires_grad_()
    optimiser = make_optimiser([w])
    path = []
    for _ in range(steps):
        optimiser.zero_grad()
        w.grad = _quadratic_gradients(w.detach())
        optimiser.step()
        path.append(w.detach().clone())
    return path


W0 = torch.tensor([1.0, -0.5, 0.2], dtype=torch.float64)


@pytest.mark.parametrize("mu", [0.0, 0.5, 0.9])
def test_sgd_momentum_step_takes_torch_sgds_steps(mu):
    """Ten steps of sgd_momentum_step equal torch.optim.SGD(momentum=mu) to 1e-12; mu=0 is plain SGD."""
    expected = _torch_trajectory(lambda p: torch.optim.SGD(p, lr=0.005, momentum=mu), W0, 10)
    w, v = W0.clone(), torch.zeros_like(W0)
    for step in range(10):
        w, v = optimisers.sgd_momentum_step(w, _quadratic_gradients(w), v, eta=0.005, mu=mu)
        torch.testing.assert_close(w, expected[step], rtol=0, atol=1e-12)


@pytest.mark.parametrize(("eta", "betas"), [(1e-3, (0.9, 0.999)), (0.05, (0.8, 0.99)), (0.1, (0.0, 0.9))])
def test_adam_step_takes_torch_adams_steps(eta, betas):
    """Twenty steps of adam_step (t = 1, 2, ...) equal torch.optim.Adam's, bias correction included."""
    expected = _torch_trajectory(lambda p: torch.optim.Adam(p, lr=eta, betas=betas), W0, 20)
    w, m, v = W0.clone(), torch.zeros_like(W0), torch.zeros_like(W0)
    for t in range(1, 21):
        w, m, v = optimisers.adam_step(w, _quadratic_gradients(w), m, v, t, eta=eta, beta1=betas[0],
                                       beta2=betas[1])
        torch.testing.assert_close(w, expected[t - 1], rtol=0, atol=1e-12)


def test_adams_first_step_is_eta_per_parameter_whatever_the_gradients_scale():
    """With the bias correction, step 1 moves every parameter by eta·sign(g) (up to eps), for g from 1e-3 to 1e3."""
    g = torch.tensor([1e-3, -1.0, 1e3], dtype=torch.float64)
    w, _, _ = optimisers.adam_step(torch.zeros(3, dtype=torch.float64), g, torch.zeros(3, dtype=torch.float64),
                                   torch.zeros(3, dtype=torch.float64), 1, eta=0.1)
    torch.testing.assert_close(w, -0.1 * g.sign(), rtol=1e-4, atol=0)


def test_the_updates_leave_their_inputs_untouched():
    w, g, m, v = (torch.randn(4, generator=torch.Generator().manual_seed(k)) for k in range(4))
    v = v.abs()
    copies = [t.clone() for t in (w, g, m, v)]
    optimisers.sgd_momentum_step(w, g, m, eta=0.1)
    optimisers.adam_step(w, g, m, v, 3)
    for t, c in zip((w, g, m, v), copies, strict=True):
        assert torch.equal(t, c)


def test_bad_inputs_get_errors_that_name_them():
    w = torch.zeros(3)
    with pytest.raises(ValueError, match="t=0"):
        optimisers.adam_step(w, w, w, w, 0)
    with pytest.raises(ValueError, match=r"v should have the shape of w, \(3,\), got \(2,\)"):
        optimisers.sgd_momentum_step(w, w, torch.zeros(2), eta=0.1)
    with pytest.raises(ValueError, match="rmsprop"):
        optimisers.descend("rmsprop", optimisers.elongated_bowl, torch.zeros(2), steps=1, eta=0.1)
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        optimisers.descend("sgd", optimisers.elongated_bowl, torch.zeros(2, 2), steps=1, eta=0.1)
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        optimisers.elongated_bowl(torch.zeros(3))


def test_descend_follows_the_step_functions_and_starts_at_w0():
    """descend's rows are w0 and then the updates of the step functions with autograd's gradients."""
    w0 = torch.tensor([-4.0, 1.0], dtype=torch.float64)
    path = optimisers.descend("adam", optimisers.elongated_bowl, w0, steps=3, eta=0.1)
    assert path.shape == (4, 2) and torch.equal(path[0], w0)
    w, m, v = w0, torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    for t in range(1, 4):
        w, m, v = optimisers.adam_step(w, torch.tensor([1.0, 100.0], dtype=torch.float64) * w, m, v, t, eta=0.1)
        torch.testing.assert_close(path[t], w)


def test_on_the_elongated_bowl_momentum_and_adam_beat_the_best_stable_sgd():
    """The notebook's figure in numbers: after 100 steps from (-4, 1), SGD at eta just below its stability limit
    2/kappa is still far from the minimum, while momentum and Adam are more than 100 times closer in loss."""
    w0 = torch.tensor([-4.0, 1.0], dtype=torch.float64)
    final = {method: float(optimisers.elongated_bowl(optimisers.descend(method, optimisers.elongated_bowl, w0,
                                                                       steps=100, eta=eta)[-1]))
             for method, eta in [("sgd", 0.019), ("momentum", 0.01), ("adam", 0.1)]}
    assert final["sgd"] > 0.1
    assert final["momentum"] < final["sgd"] / 100 and final["adam"] < final["sgd"] / 100
