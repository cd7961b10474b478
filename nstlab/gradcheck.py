r"""Gradient checking: compare a hand-derived gradient with finite differences.

A backpropagation bug rarely crashes; the network just learns badly. The cure is to compare the gradient
with the definition of the derivative. The central difference

.. math::  \frac{\partial E}{\partial \theta_i} \approx \frac{E(\theta + \epsilon e_i) - E(\theta - \epsilon e_i)}{2\epsilon}

has an error of order :math:`\epsilon^2`, and the two gradients are compared by the relative error

.. math::  r = \frac{\lVert g - \tilde g \rVert}{\max(\lVert g \rVert + \lVert \tilde g \rVert, \text{tiny})}.

In float64 with :math:`\epsilon = 10^{-6}` a correct gradient gives :math:`r \lesssim 10^{-7}`; a wrong one
gives :math:`r` near 1. In float32 round-off dominates: use float64 for checking.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from nstlab import mlp

# Central differences in float64: truncation error ~eps^2 = 1e-12, round-off ~1e-16 / eps = 1e-10.
DEFAULT_EPS = 1e-6


def numerical_gradient(f: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, *,
                       eps: float = DEFAULT_EPS) -> torch.Tensor:
    r"""The central-difference gradient of a scalar function ``f`` at ``theta``, one entry at a time.

    Args:
        f: maps a tensor shaped like ``theta`` to a 0-d tensor (or a number).
        theta: the point, any shape; not modified (``f`` sees perturbed copies).
        eps: the step :math:`\epsilon`.

    Returns:
        A tensor of the shape and dtype of ``theta``.

    Example:
        >>> g = numerical_gradient(lambda t: (t ** 2).sum(), torch.tensor([1.0, -2.0], dtype=torch.float64))
        >>> g.round(decimals=6).tolist()
        [2.0, -4.0]
    """
    grad = theta.new_zeros(theta.shape)  # new_zeros is contiguous even for a transposed theta, so view works
    for i in range(theta.numel()):
        step = theta.new_zeros(theta.shape)
        step.view(-1)[i] = eps  # the i-th entry in row-major order
        grad.view(-1)[i] = (float(f(theta + step)) - float(f(theta - step))) / (2 * eps)
    return grad


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    r"""The relative error :math:`\lVert a - b \rVert / (\lVert a \rVert + \lVert b \rVert)` (0 if both are 0).

    Example:
        >>> relative_error(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0]))
        0.0
    """
    if a.shape != b.shape:
        raise ValueError(f"a and b should have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a.detach().double(), b.detach().double()
    scale = float(a.norm() + b.norm())
    return float((a - b).norm()) / scale if scale > 0 else 0.0


def network_numerical_gradients(params: mlp.Params, X: torch.Tensor, T: torch.Tensor, *,
                                activation: str = "sigmoid", eps: float = DEFAULT_EPS) -> mlp.Params:
    """Finite-difference gradients of :func:`nstlab.mlp.loss` for every W and b of a network.

    Returns:
        A list of ``(dW, db)`` pairs shaped like ``params``.

    Example:
        >>> params = mlp.init_params([2, 2, 1])
        >>> X, T = torch.ones(3, 2, dtype=torch.float64), torch.zeros(3, 1, dtype=torch.float64)
        >>> num = network_numerical_gradients(params, X, T)
        >>> relative_error(num[0][0], mlp.backward(params, X, T)[0][0]) < 1e-7
        True
    """
    grads = []
    for layer, (W, b) in enumerate(params):
        def with_W(W_new, layer=layer, b=b):
            return mlp.loss(params[:layer] + [(W_new, b)] + params[layer + 1 :], X, T, activation=activation)

        def with_b(b_new, layer=layer, W=W):
            return mlp.loss(params[:layer] + [(W, b_new)] + params[layer + 1 :], X, T, activation=activation)

        grads.append((numerical_gradient(with_W, W, eps=eps), numerical_gradient(with_b, b, eps=eps)))
    return grads


def max_relative_error(grads: mlp.Params, reference: mlp.Params) -> float:
    """The largest :func:`relative_error` over all the W and b of two gradient lists.

    Example:
        >>> g = [(torch.ones(2, 2), torch.ones(2))]
        >>> max_relative_error(g, g)
        0.0
    """
    if len(grads) != len(reference):
        raise ValueError(f"the gradient lists have {len(grads)} and {len(reference)} layers")
    return max(max(relative_error(dW, rW), relative_error(db, rb))
               for (dW, db), (rW, rb) in zip(grads, reference, strict=True))
