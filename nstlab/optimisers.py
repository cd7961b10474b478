r"""Optimisers for training networks: gradient descent with momentum, and Adam.

Plain gradient descent moves the parameters :math:`w` against the gradient :math:`g = \nabla E(w)` by a
learning rate :math:`\eta`: :math:`w \leftarrow w - \eta g`. On an *ill-conditioned* loss, steep in some
directions and shallow in others, one :math:`\eta` cannot suit both: it must be small enough not to
overshoot the steep direction, and then the shallow one barely moves. Two remedies, both one line each:

**Momentum** (Polyak, 1964; in deep learning Sutskever et al., 2013) keeps a running sum :math:`v` of past
gradients, so that steps along a consistent direction add up while steps that flip sign cancel:

.. math::  v_t = \mu\, v_{t-1} + g_t, \qquad w_t = w_{t-1} - \eta\, v_t.

This is PyTorch's form (``torch.optim.SGD(momentum=mu)``, dampening 0). The form of Sutskever et al.,
:math:`v_t = \mu v_{t-1} - \eta g_t,\ w_t = w_{t-1} + v_t`, takes the same steps for a constant
:math:`\eta`; its :math:`v` is :math:`-\eta` times ours.

**Adam** (Kingma & Ba, 2015, Algorithm 1) keeps running means of the gradient and of its square, corrects
them for starting at zero, and divides, so that every parameter gets a step of about :math:`\eta` whatever
the scale of its gradient:

.. math::

    m_t = \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, \qquad v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2,

    \hat m_t = \frac{m_t}{1 - \beta_1^t}, \qquad \hat v_t = \frac{v_t}{1 - \beta_2^t}, \qquad
    w_t = w_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}.

The paper calls the learning rate :math:`\alpha`; the course calls it :math:`\eta` throughout. The step
number :math:`t` starts at 1. These are the updates of ``torch.optim.SGD`` and ``torch.optim.Adam`` (without
weight decay), written as pure functions: they return the new parameters and state and change nothing in
place. :func:`descend` runs any of them on a function of a few variables, for the figures of notebook 04.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# Kingma & Ba's defaults, which torch.optim.Adam uses too.
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8
# The usual momentum coefficient: the running sum remembers about 1 / (1 - mu) = 10 past gradients.
MU = 0.9
METHODS = ("sgd", "momentum", "adam")


def sgd_momentum_step(w: torch.Tensor, grad: torch.Tensor, v: torch.Tensor, *, eta: float,
                      mu: float = MU) -> tuple[torch.Tensor, torch.Tensor]:
    r"""One step of gradient descent with momentum: :math:`v \leftarrow \mu v + g`, :math:`w \leftarrow w - \eta v`.

    With ``mu=0`` this is plain gradient descent. It is the update of ``torch.optim.SGD(momentum=mu)``.

    Args:
        w: the parameters, any shape.
        grad: the gradient :math:`g = \partial E / \partial w` at ``w``, the same shape.
        v: the running sum of past gradients (the "velocity"), the same shape; zeros before the first step.
        eta: the learning rate :math:`\eta`.
        mu: the momentum coefficient :math:`\mu`, between 0 and 1.

    Returns:
        ``(w_new, v_new)``, new tensors of the shape of ``w``; the inputs are left unchanged.

    Example:
        >>> w, v = sgd_momentum_step(torch.tensor([1.0]), torch.tensor([2.0]), torch.zeros(1), eta=0.1)
        >>> w, v
        (tensor([0.8000]), tensor([2.]))
        >>> sgd_momentum_step(w, torch.tensor([2.0]), v, eta=0.1)  # v = 0.9 * 2 + 2 = 3.8
        (tensor([0.4200]), tensor([3.8000]))
    """
    _check_same_shape(w, grad=grad, v=v)
    velocity = grad + mu * v
    return w - eta * velocity, velocity


def adam_step(w: torch.Tensor, grad: torch.Tensor, m: torch.Tensor, v: torch.Tensor, t: int, *,
              eta: float = 1e-3, beta1: float = BETA1, beta2: float = BETA2,
              eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""One step of Adam (Kingma & Ba, 2015, Algorithm 1), with the bias correction of both moments.

    .. math::

        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g, \quad v_t = \beta_2 v_{t-1} + (1 - \beta_2) g^2, \quad
        w_t = w_{t-1} - \eta \frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}

    Args:
        w: the parameters, any shape.
        grad: the gradient :math:`g` at ``w``, the same shape.
        m: the running mean of the gradient (first moment), the same shape; zeros before the first step.
        v: the running mean of the squared gradient (second moment), the same shape; zeros at first.
        t: the number of this step, 1 for the first.
        eta: the learning rate :math:`\eta` (the paper's :math:`\alpha`).
        beta1, beta2: the decay rates of the two running means.
        eps: :math:`\epsilon`, added to the denominator so that a zero gradient does not divide by zero.

    Returns:
        ``(w_new, m_new, v_new)``, new tensors of the shape of ``w``; the inputs are left unchanged.

    Raises:
        ValueError: if ``t`` is below 1 (the bias correction would divide by zero).

    Example:
        >>> w, m, v = adam_step(torch.tensor([1.0]), torch.tensor([5.0]), torch.zeros(1), torch.zeros(1), 1,
        ...                     eta=0.1)
        >>> w  # the first step is eta, whatever the size of the gradient
        tensor([0.9000])
    """
    _check_same_shape(w, grad=grad, m=m, v=v)
    if t < 1:
        raise ValueError(f"t is the number of the step and starts at 1, got t={t}; the bias correction "
                         "1 - beta1**t would be 0")
    m_new = beta1 * m + (1 - beta1) * grad
    v_new = beta2 * v + (1 - beta2) * grad**2
    m_hat = m_new / (1 - beta1**t)  # the running means start at 0 and are too small early on; this undoes it
    v_hat = v_new / (1 - beta2**t)
    return w - eta * m_hat / (v_hat.sqrt() + eps), m_new, v_new


def _check_same_shape(w: torch.Tensor, **others: torch.Tensor) -> None:
    for name, other in others.items():
        if tuple(other.shape) != tuple(w.shape):
            raise ValueError(f"{name} should have the shape of w, {tuple(w.shape)}, got {tuple(other.shape)}")


def descend(method: str, loss: Callable[[torch.Tensor], torch.Tensor], w0: torch.Tensor, *, steps: int,
            eta: float, mu: float = MU, beta1: float = BETA1, beta2: float = BETA2) -> torch.Tensor:
    r"""Run ``steps`` steps of one optimiser on ``loss`` from ``w0``; the gradients come from autograd.

    Args:
        method: ``"sgd"`` (plain gradient descent), ``"momentum"`` or ``"adam"``.
        loss: a function from the parameters (shape of ``w0``) to a scalar tensor.
        w0: the starting parameters, shape (D,).
        steps: the number of steps.
        eta: the learning rate.
        mu: the momentum coefficient (``"momentum"`` only).
        beta1, beta2: Adam's decay rates (``"adam"`` only).

    Returns:
        The trajectory, shape (steps + 1, D): row 0 is ``w0``, row ``t`` the parameters after step ``t``.

    Example:
        >>> path = descend("sgd", lambda w: 0.5 * (w**2).sum(), torch.tensor([1.0, -2.0]), steps=2, eta=0.5)
        >>> path
        tensor([[ 1.0000, -2.0000],
                [ 0.5000, -1.0000],
                [ 0.2500, -0.5000]])
    """
    if method not in METHODS:
        raise ValueError(f"method {method!r} is unknown; choose one of {', '.join(METHODS)}")
    if w0.ndim != 1:
        raise ValueError(f"w0 should have shape (D,), got {tuple(w0.shape)}")
    w = w0.detach().clone()
    m, v = torch.zeros_like(w), torch.zeros_like(w)
    path = [w]
    for t in range(1, steps + 1):
        x = w.clone().requires_grad_()
        (grad,) = torch.autograd.grad(loss(x), [x])
        if method == "adam":
            w, m, v = adam_step(w, grad, m, v, t, eta=eta, beta1=beta1, beta2=beta2)
        else:
            w, v = sgd_momentum_step(w, grad, v, eta=eta, mu=mu if method == "momentum" else 0.0)
        path.append(w)
    return torch.stack(path)  # (steps + 1, D)


def elongated_bowl(w: torch.Tensor, *, kappa: float = 100.0) -> torch.Tensor:
    r"""An ill-conditioned quadratic :math:`E(w) = \tfrac12 (w_0^2 + \kappa\, w_1^2)`, minimum 0 at the origin.

    Its curvature is 1 along :math:`w_0` and :math:`\kappa` along :math:`w_1` (the condition number). Gradient
    descent is stable only for :math:`\eta < 2 / \kappa`, and with such an :math:`\eta` the shallow direction
    shrinks by just :math:`1 - \eta` per step.

    Args:
        w: parameters of shape (..., 2).
        kappa: the ratio of the two curvatures.

    Returns:
        :math:`E` of shape (...).

    Example:
        >>> elongated_bowl(torch.tensor([2.0, 1.0]), kappa=10.0)
        tensor(7.)
    """
    if w.shape[-1] != 2:
        raise ValueError(f"w should have shape (..., 2), got {tuple(w.shape)}")
    return 0.5 * (w[..., 0] ** 2 + kappa * w[..., 1] ** 2)
