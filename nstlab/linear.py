r"""The linear unit and gradient descent.

A linear unit is a perceptron whose activation is the identity, :math:`f(z) = z`, so its output

.. math::  \hat y = w \cdot x + b

is a real number instead of 0 or 1. That makes it a regression model, and it makes the error a smooth
function of the weights, so we can go downhill on it even when the data cannot be fitted exactly. The
objective (the seed article's :math:`E`) is half the sum of squared errors over the N examples,

.. math::  E(w, b) = \tfrac12 \sum_{n=1}^{N} \big(y_n - \hat y_n\big)^2,

whose gradient is

.. math::  \frac{\partial E}{\partial w} = -\sum_n (y_n - \hat y_n)\, x_n, \qquad
           \frac{\partial E}{\partial b} = -\sum_n (y_n - \hat y_n).

Batch gradient descent takes the step :math:`w \leftarrow w - \eta\,\partial E/\partial w` with the sum
over all examples; stochastic gradient descent (SGD) takes one such step per example, using that example's
term alone. Because E is a *sum*, a safe batch learning rate shrinks like 1/N.

Notation: ``X`` has shape (N, D), ``y`` and predictions (N,), ``w`` (D,), ``b`` a 0-d tensor, ``eta`` the
learning rate :math:`\eta`. This module also makes the course's regression data set, :func:`income_data`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Names of the columns of income_data(), in order.
INCOME_FEATURES = ("experience", "education", "hours")


def _check(X: torch.Tensor, y: torch.Tensor | None, w: torch.Tensor | None) -> None:
    if X.ndim != 2:
        raise ValueError(f"X should have shape (N, D), one example per row; got shape {tuple(X.shape)}")
    if y is not None and y.shape != (X.shape[0],):
        raise ValueError(f"y should have shape (N,) = ({X.shape[0]},) to match X; got shape {tuple(y.shape)}")
    if w is not None and w.shape != (X.shape[1],):
        raise ValueError(f"w should have shape (D,) = ({X.shape[1]},) to match X; got shape {tuple(w.shape)}")


def income_data(n: int = 100, *, seed: int = 0, noise: float = 5.0,
                dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    r"""A made-up regression data set: yearly income against experience, education and working hours.

    Each person gets experience :math:`x_1 \in [0, 40]` years, education beyond school :math:`x_2 \in [0, 8]`
    years and :math:`x_3 \in [20, 50]` hours a week, and an income in thousands

    .. math::  y = 12 + 1.5\,x_1 + 3\,x_2 + 0.5\,x_3 + \varepsilon, \qquad \varepsilon \sim \mathcal N(0, \sigma^2),

    so a linear unit can learn it up to the noise :math:`\sigma` (``noise``).

    Args:
        n: number of people N.
        seed: seed of a local generator (the global one is not touched).
        noise: standard deviation of the noise, in thousands.
        dtype: floating dtype of the result.

    Returns:
        ``(X, y)``: X of shape (N, 3), columns :data:`INCOME_FEATURES`; y of shape (N,).

    Example:
        >>> X, y = income_data(5, seed=1)
        >>> X.shape, y.shape, bool((X[:, 0] >= 0).all() and (X[:, 0] <= 40).all())
        (torch.Size([5, 3]), torch.Size([5]), True)
    """
    g = torch.Generator().manual_seed(seed)
    low = torch.tensor([0.0, 0.0, 20.0], dtype=torch.float64)
    high = torch.tensor([40.0, 8.0, 50.0], dtype=torch.float64)
    X = low + (high - low) * torch.rand(n, 3, generator=g, dtype=torch.float64)  # (N, 3)
    y = 12.0 + X @ torch.tensor([1.5, 3.0, 0.5], dtype=torch.float64)
    y = y + noise * torch.randn(n, generator=g, dtype=torch.float64)
    return X.to(dtype), y.to(dtype)


def standardize(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Shift and scale every column to mean 0 and standard deviation 1: :math:`z = (x - \mu) / s`.

    Gradient descent converges much faster when features have similar scales (the loss surface becomes
    round instead of a long narrow valley).

    Returns:
        ``(Z, mu, s)``: Z of shape (N, D); mu and s of shape (D,), so that ``X == Z * s + mu``.

    Example:
        >>> Z, mu, s = standardize(torch.tensor([[1.0], [3.0]]))
        >>> Z.flatten().tolist(), mu.tolist()
        ([-1.0, 1.0], [2.0])
    """
    _check(X, None, None)
    mu = X.mean(0)
    s = X.std(0, correction=0).clamp_min(torch.finfo(X.dtype).tiny)  # a constant column stays 0, not NaN
    return (X - mu) / s, mu, s


def predict(X: torch.Tensor, w: torch.Tensor, b: torch.Tensor | float) -> torch.Tensor:
    r"""The linear unit's outputs :math:`\hat y = X w + b`.

    Args:
        X: inputs, shape (N, D).
        w: weights, shape (D,).
        b: bias, a number or 0-d tensor.

    Returns:
        Predictions, shape (N,).

    Example:
        >>> predict(torch.tensor([[1.0, 2.0]]), torch.tensor([3.0, 4.0]), 0.5)
        tensor([11.5000])
    """
    _check(X, None, w)
    return X @ w + b


def loss(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor | float) -> torch.Tensor:
    r"""The objective :math:`E = \tfrac12 \sum_n (y_n - \hat y_n)^2` (a sum, not a mean).

    Args:
        X: inputs, shape (N, D).
        y: targets, shape (N,).
        w: weights, shape (D,).
        b: bias.

    Returns:
        A 0-d tensor.

    Example:
        >>> loss(torch.tensor([[1.0], [2.0]]), torch.tensor([1.0, 1.0]), torch.tensor([1.0]), 0.0)
        tensor(0.5000)
    """
    _check(X, y, w)
    return 0.5 * ((y - predict(X, w, b)) ** 2).sum()


def gradient(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor,
             b: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The gradient of :func:`loss`: :math:`\partial E/\partial w = -\sum_n (y_n - \hat y_n) x_n` and
    :math:`\partial E/\partial b = -\sum_n (y_n - \hat y_n)`.

    Returns:
        ``(dw, db)``: dw of shape (D,), db 0-d.

    Example:
        >>> gradient(torch.tensor([[1.0], [2.0]]), torch.tensor([1.0, 1.0]), torch.tensor([1.0]), 0.0)
        (tensor([2.]), tensor(1.))
    """
    _check(X, y, w)
    residual = y - predict(X, w, b)  # (N,)
    return -(residual @ X), -residual.sum()


def gd_step(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor | float, *,
            eta: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""One step of batch gradient descent on the whole data set: :math:`w \leftarrow w - \eta\,\partial E/\partial w`.

    Returns:
        ``(w', b')``, new tensors; ``w`` and ``b`` are not modified.

    Example:
        >>> gd_step(torch.tensor([[1.0], [2.0]]), torch.tensor([1.0, 1.0]), torch.tensor([1.0]), 0.0, eta=0.1)
        (tensor([0.8000]), tensor(-0.1000))
    """
    dw, db = gradient(X, y, w, b)
    return w - eta * dw, b - eta * db


def sgd_epoch(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor | float, *,
              eta: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    r"""One epoch of stochastic gradient descent: one :func:`gd_step` per example, in a shuffled order.

    The order is ``torch.randperm(N, generator=torch.Generator().manual_seed(seed))``, so the same seed
    gives the same epoch.

    Returns:
        ``(w', b')`` after N single-example steps.

    Example:
        >>> X, y = torch.tensor([[1.0], [2.0]]), torch.tensor([2.0, 4.0])
        >>> w, b = sgd_epoch(X, y, torch.zeros(1), 0.0, eta=0.1, seed=0)
        >>> w.shape, b.shape
        (torch.Size([1]), torch.Size([]))
    """
    _check(X, y, w)
    b = torch.as_tensor(b, dtype=w.dtype, device=w.device)
    order = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(seed))
    for n in order.tolist():
        w, b = gd_step(X[n : n + 1], y[n : n + 1], w, b, eta=eta)  # a "batch" of one example
    return w, b


def least_squares(X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The closed-form minimiser of E: solve the normal equations for :math:`[w; b]` with a column of ones.

    Returns:
        ``(w, b)``: w of shape (D,), b 0-d.

    Example:
        >>> X = torch.tensor([[0.0], [1.0], [2.0]], dtype=torch.float64)
        >>> w, b = least_squares(X, 2 * X[:, 0] + 1)
        >>> round(float(w[0]), 6), round(float(b), 6)
        (2.0, 1.0)
    """
    _check(X, y, None)
    A = torch.cat([X, torch.ones_like(X[:, :1])], dim=1)  # (N, D + 1): the bias is the weight of a 1
    theta = torch.linalg.lstsq(A, y.unsqueeze(1)).solution[:, 0]  # (D + 1,)
    return theta[:-1], theta[-1]


@dataclass(frozen=True)
class Fit:
    """A gradient-descent run.

    Attributes:
        w: final weights, shape (D,).
        b: final bias, 0-d.
        ws: weights after each epoch, shape (E + 1, D); row 0 is the start.
        bs: biases after each epoch, shape (E + 1,).
        losses: E after each epoch, shape (E + 1,).
    """

    w: torch.Tensor
    b: torch.Tensor
    ws: torch.Tensor
    bs: torch.Tensor
    losses: torch.Tensor


def fit(X: torch.Tensor, y: torch.Tensor, *, eta: float, epochs: int, method: str = "batch",
        w0: torch.Tensor | None = None, b0: float = 0.0, seed: int = 0) -> Fit:
    r"""Fit a linear unit by batch gradient descent (one step per epoch) or SGD (N steps per epoch).

    Args:
        X: inputs, shape (N, D).
        y: targets, shape (N,).
        eta: learning rate.
        epochs: number of epochs E.
        method: ``"batch"`` or ``"sgd"``.
        w0: initial weights, shape (D,); zeros if None.
        b0: initial bias.
        seed: SGD's shuffle in epoch e uses seed ``seed + e``.

    Returns:
        A :class:`Fit`. A learning rate that is too large shows up as losses that grow (possibly to inf).

    Example:
        >>> X, y = torch.tensor([[0.0], [1.0], [2.0]]), torch.tensor([1.0, 3.0, 5.0])
        >>> f = fit(X, y, eta=0.1, epochs=200)
        >>> round(float(f.w[0]), 3), round(float(f.b), 3)
        (2.0, 1.0)
    """
    _check(X, y, w0)
    if method not in ("batch", "sgd"):
        raise ValueError(f"method should be 'batch' or 'sgd', got {method!r}")
    w = torch.zeros(X.shape[1], dtype=X.dtype, device=X.device) if w0 is None else w0
    b = torch.as_tensor(b0, dtype=X.dtype, device=X.device)
    ws, bs, losses = [w], [b], [loss(X, y, w, b)]
    for epoch in range(epochs):
        if method == "batch":
            w, b = gd_step(X, y, w, b, eta=eta)
        else:
            w, b = sgd_epoch(X, y, w, b, eta=eta, seed=seed + epoch)
        ws.append(w)
        bs.append(b)
        losses.append(loss(X, y, w, b))
    return Fit(w, b, torch.stack(ws), torch.stack(bs), torch.stack(losses))
