"""Headless tests of the Part I lecture widgets: set control values, press buttons, check what changed.

How fast they answer is measured in benchmarks/bench_widgets.py, not here.
"""

import itertools

import torch

from nstlab import linear, mlp, perceptron
from nstlab.widgets.backprop_stepper import STAGES as backprop_stages
from nstlab.widgets.backprop_stepper import backprop_stepper
from nstlab.widgets.gd_explorer import gd_explorer
from nstlab.widgets.perceptron_stepper import perceptron_stepper


def _epoch_order(demo) -> list[int]:
    """The order in which the stepper visits the examples: cyclic, from its start."""
    n = len(demo.y)
    return [(demo.start + k) % n for k in range(n)]


def test_perceptron_stepper_applies_the_rule_one_example_at_a_time_and_redraws():
    demo = perceptron_stepper(gate="and", eta=0.5)
    first_image = demo.image.value
    for _ in range(4):  # the first epoch on AND, example by example
        demo.step_button.click()
    expected_w, expected_b = torch.zeros(2), torch.zeros(())
    X, y = demo.X, demo.y
    for n in _epoch_order(demo):
        expected_w, expected_b = perceptron.update(X[n], y[n], expected_w, expected_b, eta=0.5)
    torch.testing.assert_close((demo.w, demo.b), (expected_w, expected_b))
    assert demo.epoch == 1 and demo.index == demo.start and len(demo.history) == 4
    assert demo.image.value != first_image and "epoch 1" in demo.status.value


def test_perceptron_stepper_first_click_moves_the_line_for_every_gate():
    """Zero weights answer 0 everywhere; the cycle starts at an example they get wrong, so a lecture's first
    click changes the weights (and the picture) instead of reporting 'no change'."""
    for gate in ("and", "or", "nand", "xor"):
        demo = perceptron_stepper(gate=gate)
        image = demo.image.value
        assert perceptron.predict(demo.X[demo.start][None], demo.w, demo.b).item() != demo.y[demo.start].item()
        demo.step_button.click()
        assert not torch.equal(demo.w, torch.zeros(2)) or demo.b.item() != 0.0, gate
        assert demo.image.value != image and "wrong" in demo.history[0], gate


def test_perceptron_stepper_draws_a_legend_naming_both_classes():
    demo = perceptron_stepper(gate="and")
    demo.step_button.click()
    legend = demo.figure.axes[0].get_legend()
    assert legend is not None and [t.get_text() for t in legend.get_texts()] == ["y = 0", "y = 1"]


def test_perceptron_stepper_epoch_button_matches_train_and_gate_change_resets():
    demo = perceptron_stepper(gate="or")
    for _ in range(3):
        demo.epoch_button.click()
    order = _epoch_order(demo)
    run = perceptron.train(demo.X[order], demo.y[order], epochs=3)  # the library's loop over the same order
    torch.testing.assert_close(demo.w, run.w)  # train stops once converged; later epochs change nothing
    demo.gate.value = "xor"
    assert demo.epoch == 0 and torch.equal(demo.w, torch.zeros(2)) and demo.y.tolist() == [0, 1, 1, 0]
    demo.eta.value = 1.0
    assert demo.history == []


def test_gd_explorer_reruns_gradient_descent_when_the_learning_rate_changes():
    demo = gd_explorer(epochs=20, eta=1e-3)
    before_image, before_losses = demo.image.value, demo.fit.losses
    demo.eta.value = 3e-3
    assert demo.image.value != before_image and not torch.equal(demo.fit.losses, before_losses)
    expected = linear.fit(demo.X, demo.y, eta=demo.eta.value, epochs=20)
    torch.testing.assert_close(demo.fit.losses, expected.losses)
    assert demo.fit.losses[-1] < demo.fit.losses[0]


def test_gd_explorer_reports_divergence_above_two_over_lambda_max():
    demo = gd_explorer(epochs=30)
    A = torch.cat([demo.X, torch.ones_like(demo.X)], dim=1)
    lam_max = float(torch.linalg.eigvalsh(A.T @ A).max())
    demo.eta.value = 2.5 / lam_max
    assert demo.fit.losses[-1] > demo.fit.losses[0] and "diverging" in demo.status.value
    demo.eta.value = 0.5 / lam_max
    assert "diverging" not in demo.status.value


def test_gd_explorer_switches_between_batch_and_sgd_and_epochs():
    demo = gd_explorer(epochs=10, eta=2e-3)
    demo.method.value = "sgd"
    expected = linear.fit(demo.X, demo.y, eta=2e-3, epochs=10, method="sgd", seed=0)
    torch.testing.assert_close(demo.fit.w, expected.w)
    demo.epochs.value = 25
    assert demo.fit.losses.shape == (26,)


def test_backprop_stepper_shows_each_delta_equal_to_the_library_and_autograd():
    demo = backprop_stepper(example=2)
    params = demo.params
    for _ in range(5):  # through "gradients"
        demo.next_button.click()
    assert backprop_stages[demo.stage] == "gradients"
    x, t = demo.values["x"], demo.values["t"]
    zs, acts = mlp.forward(params, x)
    delta2 = mlp.output_delta(zs[1], acts[2], t)
    torch.testing.assert_close(demo.values["delta2"], delta2)
    torch.testing.assert_close(demo.values["delta1"], mlp.hidden_delta(delta2, params[1][0], zs[0]))
    for (dW, db), (rW, rb) in zip(demo.values["grads"], mlp.autograd_gradients(params, x, t), strict=True):
        torch.testing.assert_close(dW, rW)
        torch.testing.assert_close(db, rb)
    assert "δ" in demo.status.value or "∂E" in demo.status.value


def test_backprop_stepper_update_lowers_the_error_and_starts_the_next_pass():
    demo = backprop_stepper(example=1, eta=1.0)
    for _ in range(6):
        demo.next_button.click()
    assert demo.values["E_after"] < demo.values["E"]
    image = demo.image.value
    demo.next_button.click()
    assert demo.stage == 0 and demo.passes == 1 and demo.image.value != image
    demo.example.value = 3
    assert demo.values["x"].tolist() == [[1.0, 1.0]] and demo.stage == 0
    demo.reset_button.click()
    assert demo.passes == 0


def _label_boxes(demo, gid: str):
    renderer = demo.figure.canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in demo.figure.axes[0].texts if t.get_gid() == gid]


def test_backprop_stepper_labels_do_not_overlap_at_any_stage():
    """Weight labels (two lines at the gradients stage) and node labels (three lines) never cover each other,
    measured with matplotlib's own renderer extents."""
    demo = backprop_stepper(example=2)
    for _ in range(len(backprop_stages) - 1):
        demo.next_button.click()
        weights, nodes = _label_boxes(demo, "weight"), _label_boxes(demo, "node")
        assert len(weights) == 2 * 2 + 2 * 1 and len(nodes) == 5
        for a, b in itertools.combinations(weights + nodes, 2):
            assert not a.overlaps(b), (backprop_stages[demo.stage], a, b)
