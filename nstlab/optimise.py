r"""Optimising the pixels: the starting image, one optimisation step, and the runs of the three optimisers.

In neural style transfer the network is fixed and the **pixels are the parameters** (Gatys et al., 2016): an
optimiser moves the image :math:`\vec x` downhill on :math:`L_{total}(\vec x)`. This module holds what that
takes, independent of which losses are minimised:

- :func:`initial_image`: where the optimisation starts, :math:`x_0 = c\,p + s\,a + n\,u`;
- :func:`make_objective`: the function :math:`\vec x \mapsto \alpha L_{content} + \beta L_{style}` that the
  optimiser minimises, with the paper's loss convention and the targets fixed;
- :func:`optimisation_step`: one step of a torch optimiser (Adam or L-BFGS) on the pixels, which keeps them
  in [0, 1] when asked (a *projected* step: after the step for Adam, before each evaluation for L-BFGS);
- :func:`run_torch` and :func:`run_lbfgsb`: many steps of torch's optimisers, or of scipy's L-BFGS-B with the
  pixels bounded to [0, 1] as the Caffe-era code did, calling back after each step.

An *objective* is any function from the image to :class:`nstlab.losses.LossParts`; :mod:`nstlab.stylize`
builds its own from all of its settings and runs these pieces scale by scale. With :math:`\alpha = 0` the
objective is texture synthesis (style only), with :math:`\beta = 0` feature inversion (content only).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from nstlab.losses import LossParts, content_loss, style_loss
from nstlab.style_config import INITS

# Pairs (s, y) that torch's L-BFGS remembers. Its default of 100 costs 200 copies of the image in memory and
# in every checkpoint. Measured at 256 px (docs/benchmarks.md, "L-BFGS history"): 100 takes 1-9 % fewer steps
# to the same loss than 20, but each step costs as much more, so the time to a result is the same; 20 keeps
# a fifth of the memory. The paper does not say.
LBFGS_HISTORY = 20
# L-BFGS's pixels are clamped to [0, 1] before each evaluation, as the PyTorch tutorial's closure does: the
# optimiser then works on the image that is shown. Measured at 256 px (docs/benchmarks.md, "Precision and
# memory layout"): without it nstlab's L-BFGS did not reach the tutorial loop's 300-step loss within 400 steps;
# with it, it does. The curvature pairs still use the unclamped step, which costs less than it spoils.
PROJECT_LBFGS = True
# Pairs that scipy's L-BFGS-B remembers: scipy's default, which the Caffe-era code used.
LBFGSB_HISTORY = 10

Objective = Callable[[torch.Tensor], LossParts]
# on_step(step, image, parts, optimiser_state) -> True to stop; optimiser_state() gives what a checkpoint saves.
OnStep = Callable[[int, torch.Tensor, LossParts, Callable[[], dict | None]], bool]


def initial_image(content: torch.Tensor, style: torch.Tensor, *, init: str = "content",
                  mix: tuple[float, float, float] = (0.4, 0.0, 0.6), seed: int = 0) -> torch.Tensor:
    r"""The image the optimisation starts from: :math:`x_0 = c\,p + s\,a + n\,u`, :math:`u \sim U[0, 1]`.

    Args:
        content: the photo :math:`p`, (1, 3, H, W) in [0, 1].
        style: the painting :math:`a`, (1, 3, H', W'); stretched to H x W.
        init: ``"content"`` (c = 1), ``"noise"`` (n = 1) or ``"mix"`` (the shares ``mix``, normalised to sum 1).
        mix: shares (c, s, n) for ``init="mix"``.
        seed: seed of the noise (a local generator; the global random state is untouched).

    Returns:
        (1, 3, H, W) float32 in [0, 1], on the device of ``content``.

    Example:
        >>> p, a = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 8, 8)
        >>> initial_image(p, a, init="mix", mix=(0.95, 0.05, 0.0))[0, 0, 0, 0].item()
        0.05000000074505806
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; use one of {', '.join(INITS)}.")
    c, s, n = {"content": (1.0, 0.0, 0.0), "noise": (0.0, 0.0, 1.0), "mix": mix}[init]
    total = c + s + n
    x = (c / total) * content
    if s:
        stretched = F.interpolate(style, size=content.shape[-2:], mode="bilinear", antialias=True, align_corners=False)
        x = x + (s / total) * stretched.clamp(0, 1)
    if n:
        u = torch.rand(content.shape, generator=torch.Generator().manual_seed(seed))  # (1, 3, H, W) on the CPU
        x = x + (n / total) * u.to(content.device)
    return x.float().clamp(0, 1)


def make_objective(extractor: nn.Module, content_targets: Mapping[str, torch.Tensor],
                   style_grams: Mapping[str, torch.Tensor], *, alpha: float = 1.0, beta: float = 1e3) -> Objective:
    r"""The style-transfer objective as a function of the image: :math:`\alpha L_{content} + \beta L_{style}`.

    The returned function runs ``extractor`` on the image :math:`\vec x` and returns the
    :class:`~nstlab.losses.LossParts`: the content loss summed over the layers of ``content_targets``, the style
    loss over the layers of ``style_grams`` with equal weights :math:`w_l = 1/L`, no total variation (0), and
    the weighted total. The losses are the paper's (:func:`nstlab.losses.content_loss`,
    :func:`nstlab.losses.style_loss`). :math:`\alpha = 0` makes it texture synthesis, :math:`\beta = 0`
    feature inversion.

    Args:
        extractor: a module that maps images (N, 3, H, W) to a dict of activations that holds every layer of
            both targets, e.g. :class:`nstlab.vgg.VGGFeatures`.
        content_targets: content layer name -> the photo's activations :math:`P^l`, (1, C, H, W).
        style_grams: style layer name -> the painting's Gram matrix :math:`A^l`, (1, C, C).
        alpha: :math:`\alpha \ge 0`, the weight of the content loss.
        beta: :math:`\beta \ge 0`, the weight of the style loss.

    Returns:
        A function ``objective(x)`` from images (N, 3, H, W) to their ``LossParts``.

    Example:
        >>> from nstlab.losses import gram_matrix
        >>> double = lambda x: {"a": 2 * x, "b": x}
        >>> objective = make_objective(double, {"a": torch.zeros(1, 3, 2, 2)}, {"b": gram_matrix(torch.ones(1, 3, 2, 2))},
        ...                            alpha=1.0, beta=0.0)
        >>> parts = objective(torch.ones(1, 3, 2, 2))
        >>> parts.content.item(), parts.style.item(), parts.total.item()  # ½ · 12 · 2², and a perfect style
        (24.0, 0.0, 24.0)
    """
    for name, value in (("alpha", alpha), ("beta", beta)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name}={value} must be a finite number >= 0 (it weighs a loss term).")
    if not content_targets or not style_grams:
        raise ValueError("content_targets and style_grams each need at least one layer (a weight of 0 switches a "
                         "term off; its target is still needed to report its loss).")

    def objective(x: torch.Tensor) -> LossParts:
        features = extractor(x)
        content = torch.stack([content_loss(features[layer], P) for layer, P in content_targets.items()]).sum()
        style = style_loss(features, style_grams)
        return LossParts(content, style, torch.zeros_like(content), alpha * content + beta * style)

    return objective


def make_optimizer(name: str, x: torch.Tensor, *, lr: float) -> torch.optim.Optimizer:
    """A torch optimiser over the pixels ``x``: ``"adam"``, or ``"lbfgs"`` taking one iteration per step.

    Args:
        name: ``"adam"`` or ``"lbfgs"`` (scipy's ``"lbfgsb"`` is run by :func:`run_lbfgsb` instead).
        x: the image being optimised, (N, 3, H, W), a leaf tensor with ``requires_grad``.
        lr: the learning rate (for L-BFGS the length of its first step; later steps are scaled by its curvature).

    Returns:
        The optimiser.

    Example:
        >>> x = torch.zeros(1, 3, 4, 4, requires_grad=True)
        >>> type(make_optimizer("lbfgs", x, lr=1.0)).__name__
        'LBFGS'
    """
    if name == "adam":
        return torch.optim.Adam([x], lr=lr)
    if name == "lbfgs":
        # One L-BFGS iteration per step (max_iter=1), as Johnson's neural-style ran it; the history carries over.
        # Zero tolerances: the step count decides when to stop, whatever the scale of the loss (an untrained
        # network's losses are tiny, and torch's defaults would stop it at once).
        return torch.optim.LBFGS([x], lr=lr, max_iter=1, history_size=LBFGS_HISTORY,
                                 tolerance_grad=0.0, tolerance_change=0.0)
    raise ValueError(f"unknown optimizer {name!r} for make_optimizer; use 'adam' or 'lbfgs'.")


def optimisation_step(x: torch.Tensor, optimizer: torch.optim.Optimizer, objective: Objective, *,
                      clip: bool = True) -> LossParts:
    r"""Take one optimiser step on the pixels: evaluate the loss, back-propagate to :math:`\vec x`, move it.

    The loss is evaluated inside a *closure* (clear the old gradient, evaluate, back-propagate, return the
    total) that is handed to ``optimizer.step``: Adam calls it once, L-BFGS as often as it needs. With
    ``clip`` the pixels are put back into [0, 1] afterwards, a projected gradient step (right for Adam; for
    L-BFGS, :func:`run_torch` clamps them before each evaluation instead, see :data:`PROJECT_LBFGS`).

    Args:
        x: the image, (N, 3, H, W), a leaf tensor with ``requires_grad`` and the optimiser's only parameter.
            It is updated in place, as every torch optimiser updates its parameters.
        optimizer: a torch optimiser over ``[x]`` (e.g. from :func:`make_optimizer`).
        objective: a function from the image to its :class:`~nstlab.losses.LossParts`.
        clip: clamp the pixels to [0, 1] after the step.

    Returns:
        The loss parts of the last evaluation in this step (for Adam, of the image before the update), detached.

    Example:
        >>> x = torch.full((1, 3, 2, 2), 0.5, requires_grad=True)
        >>> def objective(x):  # pull every pixel towards 2, which is out of range
        ...     total = ((x - 2) ** 2).sum()
        ...     return LossParts(content=total, style=total * 0, tv=total * 0, total=total)
        >>> parts = optimisation_step(x, torch.optim.SGD([x], lr=0.1), objective)
        >>> parts.total.item(), x.max().item()  # the loss at 0.5, then one step 0.5 + 0.1 * 3 = 0.8
        (27.0, 0.800000011920929)
    """
    if not (isinstance(x, torch.Tensor) and x.is_leaf and x.requires_grad):
        raise ValueError("x must be a leaf tensor with requires_grad=True, the optimiser's parameter; "
                         "make it with x = image.detach().clone().requires_grad_(True).")
    last: list[LossParts] = []

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)  # gradients accumulate in torch; start each evaluation at zero
        parts = objective(x)
        parts.total.backward()
        last.append(parts)
        return parts.total

    optimizer.step(closure)
    if clip:
        with torch.no_grad():
            x.clamp_(0, 1)
    parts = last[-1]
    return LossParts(parts.content.detach(), parts.style.detach(), parts.tv.detach(), parts.total.detach())


def run_torch(objective: Objective, x0: torch.Tensor, *, optimizer: str, lr: float, start: int, stop: int,
              on_step: OnStep, state: dict | None = None) -> tuple[torch.Tensor, bool]:
    """Run steps ``start + 1 .. stop`` of torch's Adam or L-BFGS from ``x0``, calling ``on_step`` after each.

    Args:
        objective: the function of the image to minimise.
        x0: the starting image, (N, 3, H, W); not modified.
        optimizer: ``"adam"`` (each step clipped to [0, 1]) or ``"lbfgs"`` (clamped to [0, 1] before each
            evaluation, see :data:`PROJECT_LBFGS`).
        lr: the learning rate.
        start, stop: the step numbers before the first and of the last step of this run.
        on_step: called as ``on_step(step, image, parts, state)``; returning ``True`` stops the run. ``state()``
            gives the optimiser's state for a checkpoint.
        state: an optimiser state saved earlier, to continue a run exactly.

    Returns:
        The image after the last step (detached) and whether ``on_step`` stopped the run.

    Example:
        >>> def objective(x):
        ...     total = ((x - 0.25) ** 2).sum()
        ...     return LossParts(content=total, style=total * 0, tv=total * 0, total=total)
        >>> x, stopped = run_torch(objective, torch.zeros(1, 3, 2, 2), optimizer="lbfgs", lr=1.0, start=0, stop=3,
        ...                        on_step=lambda *args: False)
        >>> round(x.mean().item(), 4), stopped
        (0.25, False)
    """
    # A contiguous copy whatever x0's layout: L-BFGS views the gradient, which takes x's strides, as a flat vector.
    x = x0.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    opt = make_optimizer(optimizer, x, lr=lr)
    if state is not None:
        opt.load_state_dict(state)
    project = optimizer == "lbfgs" and PROJECT_LBFGS

    def evaluate(image: torch.Tensor) -> LossParts:
        if project:  # L-BFGS: the pixels put back into [0, 1] before each evaluation, as the tutorial's closure does
            with torch.no_grad():
                image.clamp_(0, 1)
        return objective(image)

    for step in range(start + 1, stop + 1):
        # Adam's steps are projected back into [0, 1] after each step, as in the PyTorch tutorial.
        parts = optimisation_step(x, opt, evaluate, clip=optimizer == "adam")
        if on_step(step, x.detach(), parts, opt.state_dict):
            return x.detach(), True
    return x.detach(), False


def run_lbfgsb(objective: Objective, x0: torch.Tensor, *, start: int, stop: int,
               on_step: OnStep) -> tuple[torch.Tensor, bool]:
    """Run steps ``start + 1 .. stop`` of scipy's L-BFGS-B on the pixels, bounded to [0, 1].

    scipy works on the flattened pixels in float64, on the CPU; each evaluation moves them to the device of
    ``x0`` and back. Its memory of past steps cannot be saved, so a resumed run starts it afresh.

    Args:
        objective, x0, start, stop, on_step: as for :func:`run_torch` (``on_step``'s state gives ``None``).

    Returns:
        The image after the last step and whether ``on_step`` stopped the run. L-BFGS-B may also stop early
        when it has converged.

    Example:
        >>> def objective(x):  # the minimum, 2, is outside the bounds
        ...     total = ((x - 2) ** 2).sum()
        ...     return LossParts(content=total, style=total * 0, tv=total * 0, total=total)
        >>> x, _ = run_lbfgsb(objective, torch.zeros(1, 3, 2, 2), start=0, stop=5, on_step=lambda *args: False)
        >>> x.max().item()
        1.0
    """
    import numpy as np
    from scipy.optimize import Bounds, minimize

    shape, device = x0.shape, x0.device
    last, step, stopped = {}, [start], [False]

    def fun(z):
        x = torch.from_numpy(z).to(device=device, dtype=torch.float32).view(shape).requires_grad_(True)
        parts = objective(x)
        parts.total.backward()
        last["parts"] = parts
        return parts.total.item(), x.grad.double().cpu().numpy().ravel()

    def callback(intermediate_result):  # scipy passes the result object to a parameter of this exact name
        step[0] += 1
        x = torch.from_numpy(intermediate_result.x).to(device=device, dtype=torch.float32).view(shape)
        if on_step(step[0], x, last["parts"], lambda: None):
            stopped[0] = True
            raise StopIteration

    n = stop - start
    result = minimize(fun, x0.detach().double().cpu().numpy().ravel(), jac=True, method="L-BFGS-B",
                      bounds=Bounds(0.0, 1.0), callback=callback,
                      options={"maxiter": n, "maxfun": 50 * n, "maxcor": LBFGSB_HISTORY, "ftol": 0.0, "gtol": 0.0})
    x = torch.from_numpy(np.asarray(result.x)).to(device=device, dtype=torch.float32).view(shape)
    return x, stopped[0]
