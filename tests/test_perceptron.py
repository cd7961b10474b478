"""Properties of the perceptron: it learns the separable gates quickly and never learns XOR."""

import pytest
import torch

from nstlab import perceptron
from nstlab.data import logic_gate


@pytest.mark.parametrize("gate", ["and", "or", "nand"])
def test_perceptron_converges_on_separable_gates_within_ten_epochs(gate):
    """AND, OR and NAND are linearly separable, so the rule reaches zero errors within 10 epochs."""
    X, y = logic_gate(gate)
    run = perceptron.train(X, y, epochs=10)
    assert run.converged, f"{gate}: errors per epoch {run.errors}"
    assert torch.equal(perceptron.predict(X, run.w, run.b), y)


@pytest.mark.parametrize("eta", [0.01, 0.1, 1.0])
def test_perceptron_never_converges_on_xor(eta):
    """XOR is not linearly separable: no epoch ends without a mistake, however long we train."""
    X, y = logic_gate("xor")
    run = perceptron.train(X, y, epochs=200, eta=eta)
    assert len(run.errors) == 200 and min(run.errors) > 0


def test_convergence_does_not_depend_on_eta_from_zero_weights():
    """From zero weights, eta only rescales w and b: the error sequence is the same for every eta > 0."""
    X, y = logic_gate("and")
    runs = [perceptron.train(X, y, epochs=10, eta=eta) for eta in (0.5, 1.0, 2.0)]  # exact binary fractions
    assert runs[0].errors == runs[1].errors == runs[2].errors
    torch.testing.assert_close(runs[0].w * 4, runs[2].w)


def test_update_leaves_weights_alone_when_the_prediction_is_right_and_moves_towards_x_otherwise():
    """The rule changes nothing on a correct prediction and adds eta * (y - y_hat) * x on a mistake."""
    w, b = torch.tensor([1.0, -1.0]), torch.tensor(0.5)
    x = torch.tensor([1.0, 0.0])  # w.x + b = 1.5 > 0: predicts 1
    w1, b1 = perceptron.update(x, 1.0, w, b, eta=0.3)
    assert torch.equal(w1, w) and torch.equal(b1, b)
    w2, b2 = perceptron.update(x, 0.0, w, b, eta=0.25)
    torch.testing.assert_close(w2, w - 0.25 * x)
    torch.testing.assert_close(b2, b - 0.25)
    assert torch.equal(w, torch.tensor([1.0, -1.0])), "update must not modify its inputs"


def test_step_is_zero_at_zero_and_keeps_shape_and_dtype():
    z = torch.tensor([[-2.0, 0.0], [1e-9, 3.0]], dtype=torch.float64)
    out = perceptron.step(z)
    assert out.dtype == torch.float64 and out.tolist() == [[0.0, 0.0], [1.0, 1.0]]


def test_run_records_weights_after_every_epoch():
    X, y = logic_gate("or")
    run = perceptron.train(X, y, epochs=10)
    assert run.ws.shape == (len(run.errors) + 1, 2) and run.bs.shape == (len(run.errors) + 1,)
    assert torch.equal(run.ws[0], torch.zeros(2)) and torch.equal(run.ws[-1], run.w)


def test_bad_shapes_raise_value_errors_that_name_the_shape():
    X, y = logic_gate("and")
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        perceptron.predict(X[0], torch.zeros(2), 0.0)
    with pytest.raises(ValueError, match="y should have shape"):
        perceptron.train(X, y[:3])
    with pytest.raises(ValueError, match="w should have shape"):
        perceptron.predict(X, torch.zeros(3), 0.0)
