"""Tests of nstlab.optimise: one optimisation step on the pixels, and the runs built from it.

The oracle is the update rule written out by hand (SGD, and Adam's first step, whose size is the learning rate
in every coordinate) and torch's own optimisers driven by an explicit loop.
"""

from __future__ import annotations

import pytest
import torch

from nstlab.losses import LossParts
from nstlab.optimise import make_optimizer, optimisation_step, run_lbfgsb, run_torch


def quadratic(target: torch.Tensor):
    """An objective with a known gradient: L = sum((x - target)^2), dL/dx = 2 (x - target)."""

    def objective(x: torch.Tensor) -> LossParts:
        total = ((x - target) ** 2).sum()
        return LossParts(content=total, style=total * 0, tv=total * 0, total=total)

    return objective


def pixels(seed: int, shape=(1, 3, 5, 4), dtype=torch.float64) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_an_sgd_step_is_x_minus_eta_times_the_gradient_clipped_to_the_pixel_range():
    """x <- clip(x - eta * 2 (x - t), 0, 1); the returned loss is that of the image before the step."""
    x0, target = pixels(0), 3 * pixels(1) - 1  # targets partly outside [0, 1]
    x = x0.clone().requires_grad_(True)
    parts = optimisation_step(x, torch.optim.SGD([x], lr=0.3), quadratic(target))
    torch.testing.assert_close(x.detach(), (x0 - 0.3 * 2 * (x0 - target)).clamp(0, 1), rtol=0, atol=1e-12)
    torch.testing.assert_close(parts.total, ((x0 - target) ** 2).sum(), rtol=1e-12, atol=0)
    assert not parts.total.requires_grad and x.is_leaf


def test_without_clip_the_pixels_may_leave_the_range():
    x = torch.full((1, 3, 2, 2), 0.9, dtype=torch.float64, requires_grad=True)
    optimisation_step(x, torch.optim.SGD([x], lr=0.5), quadratic(torch.full_like(x, 2.0)), clip=False)
    torch.testing.assert_close(x.detach(), torch.full_like(x, 0.9 - 0.5 * 2 * (0.9 - 2.0)))


def test_gradients_do_not_accumulate_across_steps():
    """Two SGD steps equal two steps computed by hand: each step starts from a zero gradient."""
    x0, target = pixels(2), pixels(3)
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.SGD([x], lr=0.1)
    for _ in range(2):
        optimisation_step(x, opt, quadratic(target))
    want = x0
    for _ in range(2):
        want = want - 0.1 * 2 * (want - target)
    torch.testing.assert_close(x.detach(), want, rtol=0, atol=1e-12)


def test_the_first_adam_step_moves_every_pixel_by_the_learning_rate_against_its_gradient_sign():
    """Adam's bias-corrected first step is lr * g / (|g| + eps): a step of lr in the direction of -sign(g)."""
    x0, target = 0.25 + 0.5 * pixels(4), pixels(5)
    x = x0.clone().requires_grad_(True)
    optimisation_step(x, torch.optim.Adam([x], lr=0.01, eps=1e-12), quadratic(target))
    torch.testing.assert_close(x.detach(), x0 - 0.01 * torch.sign(x0 - target), rtol=0, atol=1e-9)


def test_lbfgs_evaluates_through_the_closure_and_equals_torchs_own_loop():
    """torch's L-BFGS needs a closure; the step gives the same image as the loop written out, and lowers the loss."""
    x0, target = pixels(6), pixels(7)
    objective = quadratic(target)
    x = x0.clone().requires_grad_(True)
    opt = make_optimizer("lbfgs", x, lr=1.0)
    y = x0.clone().requires_grad_(True)
    ref = torch.optim.LBFGS([y], lr=1.0, max_iter=1, history_size=20, tolerance_grad=0.0, tolerance_change=0.0)

    def closure():
        ref.zero_grad()
        loss = objective(y).total
        loss.backward()
        return loss

    losses = []
    for _ in range(3):
        losses.append(optimisation_step(x, opt, objective, clip=False).total.item())
        ref.step(closure)
    torch.testing.assert_close(x.detach(), y.detach(), rtol=0, atol=1e-12)
    assert losses[2] < losses[1] < losses[0]


def test_lbfgs_runs_project_the_pixels_before_every_evaluation():
    """nstlab's L-BFGS evaluates only images in [0, 1] (the tutorial's closure clamps too); the minimum outside
    the range, at 2, pulls the pixels to the bound and no evaluation ever sees them beyond it."""
    seen = []

    def objective(x):
        seen.append((x.min().item(), x.max().item()))
        total = ((x - 2) ** 2).sum()
        return LossParts(content=total, style=total * 0, tv=total * 0, total=total)

    x, _ = run_torch(objective, torch.full((1, 3, 2, 2), 0.5), optimizer="lbfgs", lr=1.0, start=0, stop=5,
                     on_step=lambda *args: False)
    assert len(seen) == 5 and all(0 <= lo and hi <= 1 for lo, hi in seen), seen
    assert seen[-1] == (1.0, 1.0)  # at the bound from the second evaluation on
    assert x.max().item() > 1  # the last step's move is clamped by the next evaluation, or when shown


def test_a_step_refuses_an_image_that_is_not_the_optimisers_leaf_parameter():
    x, parameter = pixels(8), pixels(8).requires_grad_(True)
    with pytest.raises(ValueError, match="requires_grad"):
        optimisation_step(x, torch.optim.SGD([parameter], lr=0.1), quadratic(x))
    with pytest.raises(ValueError, match="leaf tensor"):
        leaf = pixels(9).requires_grad_(True)
        optimisation_step(leaf * 1, torch.optim.SGD([leaf], lr=0.1), quadratic(leaf.detach()))


def test_make_optimizer_names_the_choices_for_an_unknown_one():
    with pytest.raises(ValueError, match="'adam' or 'lbfgs'"):
        make_optimizer("sgd", pixels(0).requires_grad_(True), lr=0.1)


@pytest.mark.parametrize("optimizer, lr", [("adam", 0.05), ("lbfgs", 1.0)])
def test_run_torch_calls_back_after_each_step_and_can_be_stopped(optimizer, lr):
    seen = []

    def on_step(step, image, parts, state):
        seen.append((step, parts.total.item()))
        assert isinstance(state(), dict)
        return step == 5

    x0 = pixels(10)
    x, stopped = run_torch(quadratic(pixels(11)), x0, optimizer=optimizer, lr=lr, start=2, stop=9, on_step=on_step)
    assert stopped and [s for s, _ in seen] == [3, 4, 5]
    assert seen[-1][1] < seen[0][1]
    assert not x.requires_grad and x0.equal(pixels(10))  # the start image is left untouched


def test_run_lbfgsb_keeps_the_pixels_in_bounds_and_reaches_the_bounded_minimum():
    target = 3 * pixels(12) - 1
    x, stopped = run_lbfgsb(quadratic(target), pixels(13), start=0, stop=20, on_step=lambda *args: False)
    assert not stopped and x.min() >= 0 and x.max() <= 1
    torch.testing.assert_close(x.double(), target.clamp(0, 1), rtol=0, atol=1e-5)


def test_make_objective_is_the_papers_total_loss_of_the_images_features_with_either_weight_zero():
    """The objective equals losses.total_loss on the extractor's features (the oracle), for alpha = 0 (texture
    synthesis), beta = 0 (feature inversion) and both; its total carries the gradient back to the pixels."""
    from nstlab import losses
    from nstlab.optimise import make_objective

    conv = torch.nn.Conv2d(3, 4, 3, padding=1, dtype=torch.float64)
    torch.nn.init.normal_(conv.weight, generator=torch.Generator().manual_seed(8))

    def extractor(x):
        a = torch.relu(conv(x))
        return {"a": a, "b": torch.nn.functional.avg_pool2d(a, 2)}

    photo, painting = pixels(9, (1, 3, 6, 6)), pixels(10, (1, 3, 6, 6))
    P = {name: f.detach() for name, f in extractor(photo).items()}  # content from both layers
    A = {"a": losses.gram_matrix(extractor(painting)["a"]).detach()}
    x = pixels(11, (2, 3, 6, 6)).requires_grad_(True)
    for alpha, beta in [(1.0, 1e3), (0.0, 1.0), (2.5, 0.0)]:
        parts = make_objective(extractor, P, A, alpha=alpha, beta=beta)(x)
        want = losses.total_loss(extractor(x), P, A, alpha=alpha, beta=beta)
        for part in ("content", "style", "tv", "total"):
            torch.testing.assert_close(getattr(parts, part), getattr(want, part), rtol=1e-12, atol=0)
    grad, = torch.autograd.grad(make_objective(extractor, P, A, alpha=0.0, beta=1.0)(x).total, x)
    assert grad.abs().sum() > 0
    with pytest.raises(ValueError, match="alpha=-1"):
        make_objective(extractor, P, A, alpha=-1.0)
    with pytest.raises(ValueError, match="style_grams"):
        make_objective(extractor, P, {})
