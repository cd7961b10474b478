"""Headless tests of the Part I lecture widgets: set control values, press buttons, check what changed."""

import time

import pytest
import torch

from nstlab import linear, mlp, perceptron
from nstlab.widgets.perceptron_stepper import perceptron_stepper

# A widget must answer a click within a second on a CPU; allow the slow shared CI machine some slack.
RESPONSE_S = 1.0


def _timed(action):
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def test_perceptron_stepper_applies_the_rule_one_example_at_a_time_and_redraws():
    demo = perceptron_stepper(gate="and", eta=0.5)
    first_image = demo.image.value
    for _ in range(4):  # the first epoch on AND, example by example
        demo.step_button.click()
    expected_w, expected_b = torch.zeros(2), torch.zeros(())
    X, y = demo.X, demo.y
    for n in range(4):
        expected_w, expected_b = perceptron.update(X[n], y[n], expected_w, expected_b, eta=0.5)
    torch.testing.assert_close((demo.w, demo.b), (expected_w, expected_b))
    assert demo.epoch == 1 and demo.index == 0 and len(demo.history) == 4
    assert demo.image.value != first_image and "epoch 1" in demo.status.value


def test_perceptron_stepper_epoch_button_matches_train_and_gate_change_resets():
    demo = perceptron_stepper(gate="or")
    for _ in range(3):
        demo.epoch_button.click()
    run = perceptron.train(demo.X, demo.y, epochs=3)
    torch.testing.assert_close(demo.w, run.ws[3])
    demo.gate.value = "xor"
    assert demo.epoch == 0 and torch.equal(demo.w, torch.zeros(2)) and demo.y.tolist() == [0, 1, 1, 0]
    demo.eta.value = 1.0
    assert demo.history == []


def test_perceptron_stepper_responds_within_a_second():
    demo = perceptron_stepper()
    assert _timed(demo.step_button.click) < RESPONSE_S
    assert _timed(lambda: setattr(demo.gate, "value", "nand")) < RESPONSE_S
