r"""A fully connected network trained by backpropagation, written out by hand.

A network with layer sizes :math:`(D_0, D_1, \dots, D_L)` is a function from an input vector
:math:`x \in \mathbb{R}^{D_0}` to an output vector :math:`\hat y \in \mathbb{R}^{D_L}`. Layer
:math:`l = 1 \dots L` has weights :math:`W^l` of shape (D_l, D_{l-1}) and biases :math:`b^l` of shape (D_l,):

.. math::  a^0 = x, \qquad z^l = W^l a^{l-1} + b^l, \qquad a^l = f(z^l), \qquad \hat y = a^L.

Hidden layers use a sigmoid :math:`\sigma(z) = 1/(1+e^{-z})` or :math:`\tanh`; the output layer always uses a
sigmoid, so outputs lie in (0, 1) like the 0/1 (one-hot) targets :math:`t`. The error is the squared error
of the seed articles, summed over the examples of a batch and the outputs,

.. math::  E = \tfrac12 \sum_n \sum_k (t_{nk} - \hat y_{nk})^2 .

Backpropagation computes the error terms :math:`\delta^l = \partial E/\partial z^l` from the output back:

.. math::  \delta^L = (\hat y - t) \odot \sigma'(z^L), \qquad
           \delta^l = \big(\delta^{l+1} W^{l+1}\big) \odot f'(z^l), \qquad
           \frac{\partial E}{\partial W^l} = \sum_n \delta^l_n (a^{l-1}_n)^\top, \qquad
           \frac{\partial E}{\partial b^l} = \sum_n \delta^l_n .

Departures from the seed article: we define :math:`\delta = +\partial E/\partial z` (as Nielsen does), so the
update is :math:`W \leftarrow W - \eta\,\partial E/\partial W`; the article's :math:`\delta` is the negative
and its update adds. Batches are rows: ``X`` has shape (N, D_0), and :math:`z^l` is computed as
``a @ W.T + b`` with shape (N, D_l).

``params`` is a list of ``(W, b)`` pairs, one per layer.

:func:`train` steps with the *mean* gradient of a mini-batch of m examples, :math:`W \leftarrow W -
\frac{\eta}{m} \sum_{n \in \text{batch}} \partial E_n/\partial W` (Nielsen's ``network.py``), so that the
step's size does not grow with m; with the summed gradient, :math:`\eta` would have to shrink as m grows.

For classification, :func:`softmax` turns the output layer's scores into probabilities and
:func:`cross_entropy` measures them against one-hot targets, :math:`C = -\sum_n \sum_k t_{nk} \ln \hat y_{nk}`;
its error term is :math:`\partial C/\partial z^L = \hat y - t`, without the factor :math:`\sigma'(z^L)` that
slows a saturated sigmoid output trained on the squared error (Nielsen, *Neural Networks and Deep Learning*,
ch. 3).
"""

from __future__ import annotations

import torch

Params = list[tuple[torch.Tensor, torch.Tensor]]


# --- activations and their derivatives ----------------------------------------------------------------------


def sigmoid(z: torch.Tensor) -> torch.Tensor:
    r"""The logistic sigmoid :math:`\sigma(z) = 1 / (1 + e^{-z})`, elementwise.

    Example:
        >>> sigmoid(torch.tensor([0.0]))
        tensor([0.5000])
    """
    return 1.0 / (1.0 + torch.exp(-z))


def sigmoid_prime(z: torch.Tensor) -> torch.Tensor:
    r"""The derivative :math:`\sigma'(z) = \sigma(z)\,(1 - \sigma(z))`, elementwise.

    Example:
        >>> sigmoid_prime(torch.tensor([0.0]))
        tensor([0.2500])
    """
    s = sigmoid(z)
    return s * (1.0 - s)


def tanh(z: torch.Tensor) -> torch.Tensor:
    r"""The hyperbolic tangent :math:`\tanh z = (e^z - e^{-z}) / (e^z + e^{-z}) = 2\sigma(2z) - 1`.

    Example:
        >>> tanh(torch.tensor([0.0]))
        tensor([0.])
    """
    return torch.tanh(z)


def tanh_prime(z: torch.Tensor) -> torch.Tensor:
    r"""The derivative :math:`\tanh'(z) = 1 - \tanh^2 z`.

    Example:
        >>> tanh_prime(torch.tensor([0.0]))
        tensor([1.])
    """
    return 1.0 - torch.tanh(z) ** 2


# Activation name -> (f, f'), for the hidden layers.
ACTIVATIONS = {"sigmoid": (sigmoid, sigmoid_prime), "tanh": (tanh, tanh_prime)}


def _activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"activation should be one of {', '.join(ACTIVATIONS)}; got {name!r}")
    return ACTIVATIONS[name]


def _check_input(params: Params, X: torch.Tensor) -> None:
    if X.ndim != 2:
        raise ValueError(f"X should have shape (N, D_0), one example per row; got shape {tuple(X.shape)}")
    if X.shape[1] != params[0][0].shape[1]:
        raise ValueError(
            f"X has {X.shape[1]} features per row but the first layer expects D_0 = {params[0][0].shape[1]}"
        )


# --- the network --------------------------------------------------------------------------------------------


def init_params(sizes: list[int] | tuple[int, ...], *, seed: int = 0, dtype: torch.dtype = torch.float64) -> Params:
    r"""Random weights :math:`W^l \sim \mathcal N(0, 1/D_{l-1})` and zero biases for layer sizes ``sizes``.

    Scaling by :math:`1/\sqrt{D_{l-1}}` keeps every :math:`z^l` of order one, so sigmoids do not start
    saturated.

    Args:
        sizes: (D_0, D_1, ..., D_L), at least two entries.
        seed: seed of a local generator.
        dtype: floating dtype of the parameters.

    Returns:
        A list of L pairs ``(W, b)`` with W of shape (D_l, D_{l-1}) and b of shape (D_l,).

    Example:
        >>> [tuple(W.shape) for W, b in init_params([2, 3, 1])]
        [(3, 2), (1, 3)]
    """
    if len(sizes) < 2:
        raise ValueError(f"sizes should list at least an input and an output size, got {sizes}")
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(d_out, d_in, generator=g, dtype=dtype) / d_in**0.5, torch.zeros(d_out, dtype=dtype))
        for d_in, d_out in zip(sizes[:-1], sizes[1:], strict=True)
    ]


def forward(params: Params, X: torch.Tensor, *,
            activation: str = "sigmoid") -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    r"""The forward pass: :math:`z^l = a^{l-1} W^{l\top} + b^l`, :math:`a^l = f(z^l)`, sigmoid at the output.

    Args:
        params: list of L pairs (W, b).
        X: inputs, shape (N, D_0).
        activation: ``"sigmoid"`` or ``"tanh"`` for the hidden layers.

    Returns:
        ``(zs, activations)``: zs holds :math:`z^1 \dots z^L`, each of shape (N, D_l); activations holds
        :math:`a^0 = X, a^1 \dots a^L` (L + 1 tensors). The network's output is ``activations[-1]``.

    Example:
        >>> zs, acts = forward(init_params([2, 3, 1]), torch.zeros(4, 2, dtype=torch.float64))
        >>> len(zs), len(acts), tuple(acts[-1].shape)
        (2, 3, (4, 1))
    """
    _check_input(params, X)
    f, _ = _activation(activation)
    zs, activations = [], [X]
    for layer, (W, b) in enumerate(params, start=1):
        z = activations[-1] @ W.T + b  # (N, D_l)
        zs.append(z)
        activations.append(sigmoid(z) if layer == len(params) else f(z))
    return zs, activations


def loss(params: Params, X: torch.Tensor, T: torch.Tensor, *, activation: str = "sigmoid") -> torch.Tensor:
    r"""The error :math:`E = \frac12 \sum_n \sum_k (t_{nk} - \hat y_{nk})^2`, a 0-d tensor.

    Example:
        >>> params = init_params([2, 1])
        >>> loss(params, torch.zeros(1, 2, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64))
        tensor(0.1250, dtype=torch.float64)
    """
    _, activations = forward(params, X, activation=activation)
    if T.shape != activations[-1].shape:
        raise ValueError(f"T should have the output's shape {tuple(activations[-1].shape)}; got {tuple(T.shape)}")
    return 0.5 * ((T - activations[-1]) ** 2).sum()


def output_delta(z: torch.Tensor, y_hat: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    r"""The output layer's error term :math:`\delta^L = (\hat y - t) \odot \sigma'(z^L)`.

    Args:
        z: :math:`z^L`, shape (N, D_L).
        y_hat: the outputs :math:`\hat y = \sigma(z^L)`, shape (N, D_L).
        T: targets, shape (N, D_L).

    Returns:
        :math:`\delta^L`, shape (N, D_L).

    Example:
        >>> output_delta(torch.tensor([[0.0]]), torch.tensor([[0.5]]), torch.tensor([[1.0]]))
        tensor([[-0.1250]])
    """
    if not z.shape == y_hat.shape == T.shape:
        raise ValueError(f"z, y_hat and T should share one shape; got {tuple(z.shape)}, {tuple(y_hat.shape)}, "
                         f"{tuple(T.shape)}")
    return (y_hat - T) * sigmoid_prime(z)


def hidden_delta(delta_next: torch.Tensor, W_next: torch.Tensor, z: torch.Tensor, *,
                 activation: str = "sigmoid") -> torch.Tensor:
    r"""A hidden layer's error term :math:`\delta^l = (\delta^{l+1} W^{l+1}) \odot f'(z^l)`.

    Args:
        delta_next: :math:`\delta^{l+1}`, shape (N, D_{l+1}).
        W_next: :math:`W^{l+1}`, shape (D_{l+1}, D_l).
        z: :math:`z^l`, shape (N, D_l).
        activation: the hidden layers' activation.

    Returns:
        :math:`\delta^l`, shape (N, D_l).

    Example:
        >>> hidden_delta(torch.tensor([[1.0]]), torch.tensor([[2.0, 3.0]]), torch.zeros(1, 2))
        tensor([[0.5000, 0.7500]])
    """
    _, f_prime = _activation(activation)
    if delta_next.shape[1] != W_next.shape[0] or z.shape[1] != W_next.shape[1]:
        raise ValueError(f"shapes do not chain: delta_next {tuple(delta_next.shape)}, W_next "
                         f"{tuple(W_next.shape)}, z {tuple(z.shape)}; expected (N, D_l+1), (D_l+1, D_l), (N, D_l)")
    return (delta_next @ W_next) * f_prime(z)  # (N, D_l+1) @ (D_l+1, D_l) -> (N, D_l)


def backward(params: Params, X: torch.Tensor, T: torch.Tensor, *, activation: str = "sigmoid") -> Params:
    r"""The gradient of :func:`loss` by backpropagation: one forward pass, then δ from the output back.

    Args:
        params: list of L pairs (W, b).
        X: inputs, shape (N, D_0).
        T: targets, shape (N, D_L).
        activation: the hidden layers' activation.

    Returns:
        A list of L pairs ``(dW, db)`` with the shapes of ``params``: :math:`\partial E/\partial W^l` and
        :math:`\partial E/\partial b^l`, summed over the batch.

    Example:
        >>> params = init_params([2, 3, 1])
        >>> grads = backward(params, torch.ones(4, 2, dtype=torch.float64), torch.ones(4, 1, dtype=torch.float64))
        >>> [tuple(dW.shape) for dW, db in grads]
        [(3, 2), (1, 3)]
    """
    zs, activations = forward(params, X, activation=activation)
    delta = output_delta(zs[-1], activations[-1], T)
    grads = []
    for layer in range(len(params) - 1, -1, -1):  # params[layer] is layer + 1 in the formulas
        grads.append((delta.T @ activations[layer], delta.sum(0)))  # (D_l, N) @ (N, D_l-1), (D_l,)
        if layer > 0:
            delta = hidden_delta(delta, params[layer][0], zs[layer - 1], activation=activation)
    return grads[::-1]


def update(params: Params, grads: Params, *, eta: float) -> Params:
    r"""One gradient-descent step :math:`W \leftarrow W - \eta\,\partial E/\partial W` (and the same for b).

    Returns:
        New parameters; ``params`` is not modified.

    Example:
        >>> update([(torch.ones(1, 1), torch.zeros(1))], [(torch.ones(1, 1), torch.ones(1))], eta=0.5)
        [(tensor([[0.5000]]), tensor([-0.5000]))]
    """
    return [(W - eta * dW, b - eta * db) for (W, b), (dW, db) in zip(params, grads, strict=True)]


def one_hot(labels: torch.Tensor, num_classes: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Targets of shape (N, num_classes): 1 in the column of the label, 0 elsewhere.

    Example:
        >>> one_hot(torch.tensor([2, 0]), 3)
        tensor([[0., 0., 1.],
                [1., 0., 0.]], dtype=torch.float64)
    """
    return torch.nn.functional.one_hot(labels.long(), num_classes).to(dtype)


def accuracy(params: Params, X: torch.Tensor, labels: torch.Tensor, *, activation: str = "sigmoid") -> float:
    """Share of the examples whose largest output is in the column of their label.

    Example:
        >>> accuracy([(torch.eye(2), torch.zeros(2))], torch.eye(2), torch.tensor([0, 1]))
        1.0
    """
    _, activations = forward(params, X, activation=activation)
    return float((activations[-1].argmax(1) == labels).double().mean())


def train(params: Params, X: torch.Tensor, T: torch.Tensor, *, epochs: int, eta: float, batch_size: int = 10,
          seed: int = 0, activation: str = "sigmoid") -> tuple[Params, list[float]]:
    r"""Mini-batch stochastic gradient descent with :func:`backward`, as in Nielsen's ``network.py``.

    Each epoch shuffles the examples (seed ``seed + epoch``) and takes one step per batch of ``batch_size``
    examples with the batch's *mean* gradient, :math:`W \leftarrow W - \frac{\eta}{m} \sum_{n \in \text{batch}}
    \partial E_n / \partial W`, where m is the size of that batch (the last one may be smaller).
    :func:`backward` returns the batch's summed gradient; dividing :math:`\eta` by m makes it the mean.

    Args:
        params: list of L pairs (W, b), not modified.
        X: inputs, shape (N, D_0).
        T: targets, shape (N, D_L).
        epochs: passes over the training set.
        eta: the learning rate :math:`\eta` for the mean gradient of a batch.
        batch_size: examples per step (m).
        seed: the shuffle of epoch e uses the seed ``seed + e``.
        activation: the hidden layers' activation.

    Returns:
        ``(params, losses)``: the trained parameters (new tensors) and E / N on the whole training set after
        each epoch.

    Example:
        >>> import nstlab.data
        >>> X, y = nstlab.data.logic_gate("xor")
        >>> params, losses = train(init_params([2, 2, 1], seed=1), X.double(), y.double()[:, None],
        ...                        epochs=5, eta=1.0, batch_size=4)
        >>> len(losses)
        5
    """
    _check_input(params, X)
    if batch_size < 1:
        raise ValueError(f"batch_size should be at least 1 example per step; got {batch_size}")
    losses = []
    for epoch in range(epochs):
        order = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(seed + epoch))
        for start in range(0, X.shape[0], batch_size):
            batch = order[start : start + batch_size]
            grads = backward(params, X[batch], T[batch], activation=activation)
            params = update(params, grads, eta=eta / len(batch))
        losses.append(float(loss(params, X, T, activation=activation)) / X.shape[0])
    return params, losses


# --- softmax outputs and the cross-entropy -----------------------------------------------------------------


def softmax(z: torch.Tensor) -> torch.Tensor:
    r"""The softmax of each row, :math:`\mathrm{softmax}(z)_k = e^{z_k} / \sum_j e^{z_j}`, computed without overflow.

    Subtracting each row's largest score first changes nothing (numerator and denominator gain the same factor
    :math:`e^{-\max_j z_j}`) but keeps every exponent at most 0, so ``exp`` cannot overflow.

    Args:
        z: scores (logits), shape (N, K).

    Returns:
        Probabilities, shape (N, K): positive, each row summing to 1.

    Example:
        >>> softmax(torch.tensor([[0.0, 0.0], [1000.0, 1000.0]]))
        tensor([[0.5000, 0.5000],
                [0.5000, 0.5000]])
    """
    if z.ndim != 2:
        raise ValueError(f"z should have shape (N, K), one row of scores per example; got shape {tuple(z.shape)}")
    # The reference uses torch's log-sum-exp (stable by construction) rather than the notebook's max shift.
    return torch.exp(z - torch.logsumexp(z, dim=1, keepdim=True))  # (N, K)


def cross_entropy(z: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    r"""The cross-entropy of softmax outputs, :math:`C = -\sum_n \sum_k t_{nk} \ln \mathrm{softmax}(z_n)_k`.

    Summed over the batch, like :func:`loss`. The logarithm of the softmax is computed directly,
    :math:`\ln \mathrm{softmax}(z)_k = z_k - m - \ln \sum_j e^{z_j - m}` with :math:`m = \max_j z_j`, so that a
    probability that rounds to 0 does not become :math:`\ln 0 = -\infty`. Its gradient is
    :math:`\partial C/\partial z = \mathrm{softmax}(z) - t`.

    Args:
        z: scores (logits) of the output layer, shape (N, K).
        T: targets, shape (N, K): one-hot rows (or any rows of probabilities).

    Returns:
        A 0-d tensor.

    Example:
        >>> cross_entropy(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]))  # -ln(1/2)
        tensor(0.6931)
    """
    if z.ndim != 2 or z.shape != T.shape:
        raise ValueError(f"z and T should both have shape (N, K); got {tuple(z.shape)} and {tuple(T.shape)}")
    return -(T * (z - torch.logsumexp(z, dim=1, keepdim=True))).sum()  # log-softmax by log-sum-exp


# --- the same network in torch ------------------------------------------------------------------------------


def to_torch(params: Params, *, activation: str = "sigmoid") -> torch.nn.Sequential:
    """The same network as a ``torch.nn.Sequential`` of ``Linear`` layers, with copies of ``params``.

    ``nn.Linear`` stores its weight as (D_out, D_in), the same layout as our W, so the copy is direct.

    Example:
        >>> to_torch(init_params([2, 3, 1]))
        Sequential(
          (0): Linear(in_features=2, out_features=3, bias=True)
          (1): Sigmoid()
          (2): Linear(in_features=3, out_features=1, bias=True)
          (3): Sigmoid()
        )
    """
    _activation(activation)
    layers: list[torch.nn.Module] = []
    for layer, (W, b) in enumerate(params, start=1):
        linear = torch.nn.Linear(W.shape[1], W.shape[0], dtype=W.dtype, device=W.device)
        with torch.no_grad():
            linear.weight.copy_(W)
            linear.bias.copy_(b)
        hidden = torch.nn.Tanh() if activation == "tanh" else torch.nn.Sigmoid()
        layers += [linear, torch.nn.Sigmoid() if layer == len(params) else hidden]
    return torch.nn.Sequential(*layers)


def autograd_gradients(params: Params, X: torch.Tensor, T: torch.Tensor, *, activation: str = "sigmoid") -> Params:
    r"""The gradient of E computed by torch's autograd on :func:`to_torch`'s network: the oracle for
    :func:`backward`.

    Example:
        >>> params = init_params([2, 3, 1])
        >>> X, T = torch.ones(4, 2, dtype=torch.float64), torch.ones(4, 1, dtype=torch.float64)
        >>> all(torch.allclose(a, b) for (a, _), (b, _) in zip(autograd_gradients(params, X, T), backward(params, X, T)))
        True
    """
    net = to_torch(params, activation=activation)
    E = 0.5 * ((T - net(X)) ** 2).sum()
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    grads = torch.autograd.grad(E, [p for m in linears for p in (m.weight, m.bias)])
    return [(grads[2 * i], grads[2 * i + 1]) for i in range(len(linears))]
