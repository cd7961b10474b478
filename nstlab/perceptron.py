r"""The perceptron: a weighted sum, a step, and a rule that nudges the weights after each mistake.

Rosenblatt's perceptron (1958) takes an input vector :math:`x \in \mathbb{R}^D`, weights
:math:`w \in \mathbb{R}^D` and a bias :math:`b`, and outputs

.. math::  \hat y = f(w \cdot x + b), \qquad f(z) = \begin{cases} 1 & z > 0 \\ 0 & \text{otherwise.} \end{cases}

The perceptron learning rule updates the weights after every example :math:`(x, y)`:

.. math::  w \leftarrow w + \eta\,(y - \hat y)\,x, \qquad b \leftarrow b + \eta\,(y - \hat y),

so nothing changes when the prediction is right. If the two classes can be split by a straight line (a
hyperplane) the rule stops changing after finitely many updates (Novikoff, 1962); if they cannot, as for
XOR, it never stops.

Notation: ``X`` has shape (N, D), one example per row; ``w`` has shape (D,); ``b`` is a 0-d tensor;
``eta`` is the learning rate :math:`\eta`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# The learning rate of the course's examples. With zero initial weights its value only rescales w and b, so
# the sequence of predictions (and hence convergence) is the same for every eta > 0.
DEFAULT_ETA = 0.1


def _check_xy(X: torch.Tensor, y: torch.Tensor | None = None) -> None:
    if X.ndim != 2:
        raise ValueError(f"X should have shape (N, D), one example per row; got shape {tuple(X.shape)}")
    if y is not None and (y.ndim != 1 or y.shape[0] != X.shape[0]):
        raise ValueError(
            f"y should have shape (N,) = ({X.shape[0]},) to match X {tuple(X.shape)}; got shape {tuple(y.shape)}"
        )


def step(z: torch.Tensor) -> torch.Tensor:
    r"""The step activation :math:`f(z) = 1` if :math:`z > 0`, else :math:`0`.

    Args:
        z: any shape.

    Returns:
        A tensor of the same shape and dtype as ``z`` holding 0s and 1s.

    Example:
        >>> step(torch.tensor([-1.0, 0.0, 2.5]))
        tensor([0., 0., 1.])
    """
    return (z > 0).to(z.dtype)


def predict(X: torch.Tensor, w: torch.Tensor, b: torch.Tensor | float) -> torch.Tensor:
    r"""The perceptron's outputs :math:`\hat y = f(X w + b)` for a batch of inputs.

    Args:
        X: inputs, shape (N, D).
        w: weights, shape (D,).
        b: bias, a number or a 0-d tensor.

    Returns:
        Predictions of shape (N,), 0s and 1s in the dtype of ``X``.

    Example:
        >>> X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
        >>> predict(X, torch.tensor([1.0, 1.0]), -1.5)  # an AND gate
        tensor([0., 0., 0., 1.])
    """
    _check_xy(X)
    if w.shape != (X.shape[1],):
        raise ValueError(f"w should have shape (D,) = ({X.shape[1]},) to match X; got shape {tuple(w.shape)}")
    return step(X @ w + b)


def update(
    x: torch.Tensor, y: torch.Tensor | float, w: torch.Tensor, b: torch.Tensor | float, *, eta: float = DEFAULT_ETA
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""One application of the perceptron rule to one example.

    .. math::  \hat y = f(w \cdot x + b),\quad w' = w + \eta (y - \hat y) x,\quad b' = b + \eta (y - \hat y)

    Args:
        x: one input, shape (D,).
        y: its target, 0 or 1.
        w: weights, shape (D,); not modified.
        b: bias, a number or 0-d tensor; not modified.
        eta: learning rate.

    Returns:
        ``(w', b')``: new weights of shape (D,) and a new 0-d bias.

    Example:
        >>> w, b = update(torch.tensor([1.0, 1.0]), 1.0, torch.zeros(2), 0.0, eta=0.5)
        >>> w, b
        (tensor([0.5000, 0.5000]), tensor(0.5000))
    """
    if x.ndim != 1 or w.shape != x.shape:
        raise ValueError(f"x and w should both have shape (D,); got x {tuple(x.shape)} and w {tuple(w.shape)}")
    b = torch.as_tensor(b, dtype=w.dtype, device=w.device)
    y_hat = step(w @ x + b)
    error = y - y_hat  # +1: output too low, -1: too high, 0: right (no change)
    return w + eta * error * x, b + eta * error


@dataclass(frozen=True)
class Run:
    """A training run of the perceptron.

    Attributes:
        w: final weights, shape (D,).
        b: final bias, 0-d.
        ws: weights after each epoch, shape (E + 1, D); row 0 holds the initial weights.
        bs: biases after each epoch, shape (E + 1,).
        errors: number of misclassified training examples after each epoch, a list of E ints.
    """

    w: torch.Tensor
    b: torch.Tensor
    ws: torch.Tensor
    bs: torch.Tensor
    errors: list[int]

    @property
    def converged(self) -> bool:
        """True if the last epoch ended with every training example classified correctly."""
        return bool(self.errors) and self.errors[-1] == 0


def train(X: torch.Tensor, y: torch.Tensor, *, epochs: int = 10, eta: float = DEFAULT_ETA) -> Run:
    r"""Train a perceptron with the perceptron rule, visiting the examples in order, from zero weights.

    Each epoch applies :func:`update` to every row of ``X`` in turn, then counts the misclassified examples.
    Training stops early after the first epoch with no mistakes.

    Args:
        X: inputs, shape (N, D).
        y: targets 0 or 1, shape (N,).
        epochs: the most passes over the data.
        eta: learning rate.

    Returns:
        A :class:`Run` with the final weights, the weights after every epoch, and the error counts.

    Example:
        >>> X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
        >>> run = train(X, torch.tensor([0.0, 0.0, 0.0, 1.0]), epochs=10)
        >>> run.converged, predict(X, run.w, run.b).tolist()
        (True, [0.0, 0.0, 0.0, 1.0])
    """
    _check_xy(X, y)
    w = torch.zeros(X.shape[1], dtype=X.dtype, device=X.device)
    b = torch.zeros((), dtype=X.dtype, device=X.device)
    ws, bs, errors = [w], [b], []
    for _ in range(epochs):
        for x_n, y_n in zip(X, y, strict=True):
            w, b = update(x_n, y_n, w, b, eta=eta)
        ws.append(w)
        bs.append(b)
        errors.append(int((predict(X, w, b) != y).sum()))
        if errors[-1] == 0:
            break
    return Run(w, b, torch.stack(ws), torch.stack(bs), errors)
