r"""Convolutional networks: ReLU, convolution, max pooling, and a small CNN for handwritten digits.

A convolutional layer arranges its neurons as a volume of width × height × depth. Every neuron at depth
:math:`d` and position :math:`(i, j)` looks at a small window of the input (all :math:`C` input channels,
:math:`k_H \times k_W` pixels) and shares its weights with every other neuron at the same depth:

.. math::

    a_{n,d,i,j} = b_d + \sum_{c=0}^{C-1} \sum_{p=0}^{k_H-1} \sum_{q=0}^{k_W-1}
                  w_{d,c,p,q} \; x^{\text{pad}}_{n,\,c,\,i s + p,\,j s + q}

with stride :math:`s` and zero padding :math:`P`. Strictly this is cross-correlation (the kernel is not
flipped), which is what every deep-learning library calls convolution. Along each side the output has

.. math::  H_\text{out} = \left\lfloor \frac{H + 2P - k}{s} \right\rfloor + 1

positions. Max pooling keeps the largest value of each window, and the ReLU :math:`f(x) = \max(0, x)` is
the activation between layers. The course reads this module top to bottom: the primitives first (each
with a loop-free form that matches ``torch.nn.functional``), then a small CNN that reuses torch's own
layers, with layer names in the VGG style (``conv1_1``, ``relu1_1``, ``pool1``, ...).

Shapes use N (batch), C (input channels), D (output channels, the depth of the volume), H and W.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from nstlab.data import Split
from nstlab.progress import progress

# Activations compared in the vanishing-gradient demonstration.
ACTIVATIONS = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}


# --- the activation -------------------------------------------------------------------------------------------


def relu(x: torch.Tensor) -> torch.Tensor:
    r"""The rectified linear unit :math:`f(x) = \max(0, x)`, entry by entry.

    Args:
        x: a tensor of any shape.

    Returns:
        A new tensor of the same shape; negative entries become 0.

    Example:
        >>> relu(torch.tensor([-2.0, 0.0, 3.0]))
        tensor([0., 0., 3.])
    """
    return torch.where(x > 0, x, torch.zeros_like(x))


def sparsity(a: torch.Tensor) -> float:
    """The fraction of entries that are exactly zero (how many neurons are silent).

    Example:
        >>> sparsity(relu(torch.tensor([-1.0, 2.0, -3.0, 4.0])))
        0.5
    """
    return float((a == 0).float().mean())


def gradient_norms_per_layer(activation: str, *, depth: int = 20, width: int = 64, batch: int = 128,
                             seed: int = 0) -> torch.Tensor:
    r"""The norm :math:`\lVert \partial E / \partial W_l \rVert` of every layer of a deep fully connected stack.

    The stack is ``depth`` layers of ``width`` neurons, all with the same activation, weights drawn from
    :math:`\mathcal{N}(0, 2 / \text{width})` (He et al., 2015) for every activation so that only the
    activation differs. The error is :math:`E = \tfrac12 \lVert a_L \rVert^2` averaged over a batch of
    standard normal inputs. Backpropagation multiplies the error by :math:`f'(z)` once per layer; the
    sigmoid's derivative is at most 1/4, so its gradients shrink towards the input, while ReLU's is 0 or 1.

    Args:
        activation: ``"relu"``, ``"sigmoid"`` or ``"tanh"``.
        depth: number of layers.
        width: neurons per layer.
        batch: number of random inputs.
        seed: seed of the weights and inputs.

    Returns:
        A float64 tensor of shape (depth,): entry ``l`` is the gradient norm of layer ``l`` (0: nearest the input).

    Example:
        >>> g = gradient_norms_per_layer("sigmoid", depth=10)
        >>> bool(g[0] < g[-1] / 100)  # the first layer learns far more slowly than the last
        True
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation {activation!r} is unknown; choose one of {', '.join(ACTIVATIONS)}")
    f = ACTIVATIONS[activation]
    gen = torch.Generator().manual_seed(seed)
    weights = [(torch.randn(width, width, generator=gen, dtype=torch.float64) * (2.0 / width) ** 0.5)
               .requires_grad_() for _ in range(depth)]
    a = torch.randn(batch, width, generator=gen, dtype=torch.float64)  # (N, width)
    for W in weights:
        a = f(a @ W)
    E = 0.5 * a.pow(2).sum(dim=1).mean()
    grads = torch.autograd.grad(E, weights)
    return torch.stack([g.norm() for g in grads])


# --- convolution and pooling ----------------------------------------------------------------------------------


def output_size(n: int, *, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    r"""The number of positions along one side: :math:`\lfloor (n + 2P - k) / s \rfloor + 1`.

    Args:
        n: input size along that side (height or width).
        kernel_size: window size k.
        stride: step s between windows.
        padding: zeros P added on each end.

    Returns:
        The output size, at least 1.

    Raises:
        ValueError: if the window does not fit into the padded input, or a size is not positive.

    Example:
        >>> output_size(28, kernel_size=5), output_size(28, kernel_size=3, padding=1, stride=2)
        (24, 14)
    """
    if n < 1 or kernel_size < 1 or stride < 1 or padding < 0:
        raise ValueError(f"need n, kernel_size, stride >= 1 and padding >= 0, got n={n}, "
                         f"kernel_size={kernel_size}, stride={stride}, padding={padding}")
    if n + 2 * padding < kernel_size:
        raise ValueError(f"a window of {kernel_size} does not fit into {n} pixels padded by {padding} "
                         "on each side; use more padding or a smaller kernel")
    return (n + 2 * padding - kernel_size) // stride + 1


def _check_conv_inputs(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, stride: int, padding: int):
    if x.ndim != 4:
        raise ValueError(f"x should have shape (N, C, H, W), got {tuple(x.shape)}; add a batch axis with x[None]")
    if w.ndim != 4 or w.shape[1] != x.shape[1]:
        raise ValueError(f"w should have shape (D, C, kH, kW) with C={x.shape[1]} like x, got {tuple(w.shape)}")
    if b is not None and tuple(b.shape) != (w.shape[0],):
        raise ValueError(f"b should have shape (D,) = ({w.shape[0]},), got {tuple(b.shape)}")
    if not isinstance(stride, int) or not isinstance(padding, int):
        raise TypeError(f"stride and padding should be ints, got {stride!r} and {padding!r}")


def conv2d_loops(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, *, stride: int = 1,
                 padding: int = 0) -> torch.Tensor:
    r"""2-D convolution written as loops over every output neuron (the definition, slowly).

    Each output neuron :math:`a_{n,d,i,j}` is the sum of its window of the padded input times the kernel
    :math:`w_d`, plus :math:`b_d`; see the module docstring.

    Args:
        x: input of shape (N, C, H, W).
        w: kernels of shape (D, C, kH, kW).
        b: biases of shape (D,), or ``None``.
        stride: step between windows, the same along both sides.
        padding: zeros added on every side.

    Returns:
        Shape (N, D, H_out, W_out), equal to ``torch.nn.functional.conv2d(x, w, b, stride, padding)``.

    Example:
        >>> x, w = torch.ones(1, 1, 3, 3), torch.ones(1, 1, 2, 2)
        >>> conv2d_loops(x, w, padding=1)[0, 0]
        tensor([[1., 2., 2., 1.],
                [2., 4., 4., 2.],
                [2., 4., 4., 2.],
                [1., 2., 2., 1.]])
    """
    _check_conv_inputs(x, w, b, stride, padding)
    N, C, H, W = x.shape
    D, _, kH, kW = w.shape
    H_out = output_size(H, kernel_size=kH, stride=stride, padding=padding)
    W_out = output_size(W, kernel_size=kW, stride=stride, padding=padding)
    xp = F.pad(x, (padding, padding, padding, padding))  # (N, C, H + 2P, W + 2P)
    out = x.new_zeros(N, D, H_out, W_out)
    for n in range(N):
        for d in range(D):
            for i in range(H_out):
                for j in range(W_out):
                    window = xp[n, :, i * stride : i * stride + kH, j * stride : j * stride + kW]  # (C, kH, kW)
                    out[n, d, i, j] = (window * w[d]).sum() + (b[d] if b is not None else 0.0)
    return out


def conv2d(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, *, stride: int = 1,
           padding: int = 0) -> torch.Tensor:
    r"""2-D convolution without Python loops: cut all windows at once, then one tensor contraction.

    ``unfold`` views the padded input as every window side by side, shape (N, C, H_out, W_out, kH, kW),
    without copying; ``einsum`` then sums :math:`w_{d,c,p,q}\,x_{n,c,i,j,p,q}` over c, p and q for all
    n, d, i, j at once. This "im2col" idea is how libraries turn convolution into a matrix product.

    Args:
        x: input of shape (N, C, H, W).
        w: kernels of shape (D, C, kH, kW).
        b: biases of shape (D,), or ``None``.
        stride: step between windows, the same along both sides.
        padding: zeros added on every side.

    Returns:
        Shape (N, D, H_out, W_out), equal to ``torch.nn.functional.conv2d(x, w, b, stride, padding)``.

    Example:
        >>> x, w = torch.arange(16.0).reshape(1, 1, 4, 4), torch.ones(1, 1, 2, 2)
        >>> conv2d(x, w, stride=2)[0, 0]
        tensor([[10., 18.],
                [42., 50.]])
    """
    _check_conv_inputs(x, w, b, stride, padding)
    _, _, kH, kW = w.shape
    output_size(x.shape[2], kernel_size=kH, stride=stride, padding=padding)  # raises if it cannot fit
    output_size(x.shape[3], kernel_size=kW, stride=stride, padding=padding)
    xp = F.pad(x, (padding, padding, padding, padding))  # (N, C, H + 2P, W + 2P)
    windows = xp.unfold(2, kH, stride).unfold(3, kW, stride)  # (N, C, H_out, W_out, kH, kW)
    out = torch.einsum("ncijpq,dcpq->ndij", windows, w)  # (N, D, H_out, W_out)
    if b is not None:
        out = out + b[None, :, None, None]
    return out


def max_pool2d(x: torch.Tensor, *, kernel_size: int = 2, stride: int | None = None) -> torch.Tensor:
    r"""Max pooling: the largest value of each ``kernel_size`` × ``kernel_size`` window, per channel.

    :math:`a_{n,c,i,j} = \max_{0 \le p, q < k} x_{n,\,c,\,i s + p,\,j s + q}`. In backpropagation only the
    largest entry of each window (its arg-max) receives the window's gradient; the others get zero.

    Args:
        x: input of shape (N, C, H, W).
        kernel_size: window size k.
        stride: step s between windows; ``None`` means ``kernel_size`` (windows that do not overlap).

    Returns:
        Shape (N, C, H_out, W_out), equal to ``torch.nn.functional.max_pool2d(x, kernel_size, stride)``.

    Example:
        >>> max_pool2d(torch.arange(16.0).reshape(1, 1, 4, 4))[0, 0]
        tensor([[ 5.,  7.],
                [13., 15.]])
    """
    if x.ndim != 4:
        raise ValueError(f"x should have shape (N, C, H, W), got {tuple(x.shape)}; add a batch axis with x[None]")
    k = kernel_size
    s = k if stride is None else stride
    output_size(x.shape[2], kernel_size=k, stride=s)  # raises if a window does not fit
    output_size(x.shape[3], kernel_size=k, stride=s)
    windows = x.unfold(2, k, s).unfold(3, k, s)  # (N, C, H_out, W_out, k, k)
    flat = windows.reshape(*windows.shape[:4], k * k)  # (N, C, H_out, W_out, k * k)
    # max (not amax): its gradient goes to the one arg-max, as in torch's max_pool2d.
    return flat.max(dim=-1).values


# --- a small CNN for the 8 × 8 digits ------------------------------------------------------------------------

# 8 × 8 digits: two 2 × 2 poolings leave 2 × 2 positions, with 64 channels: 64 * 2 * 2 inputs to fc1.
FC_INPUTS = 64 * 2 * 2


class SmallCNN(nn.Module):
    """A small CNN for 8 × 8 digits, with VGG-style layer names.

    ``conv1_1`` (1 → 16) · ``relu1_1`` · ``conv1_2`` (16 → 32) · ``relu1_2`` · ``pool1`` (8 → 4) ·
    ``conv2_1`` (32 → 64) · ``relu2_1`` · ``pool2`` (4 → 2) · flatten (64 × 2 × 2 = 256) · ``fc1`` (256 → 64)
    · ``relu_fc1`` · ``fc2`` (64 → 10 class scores). All convolutions are 3 × 3 with padding 1, so they keep
    the width and height and only the 2 × 2 max poolings halve them. The parameters live in ``nn.Conv2d`` and
    ``nn.Linear`` layers named as above; ``forward(x)`` maps digits (N, 1, 8, 8) to scores (N, 10).

    Example:
        >>> SmallCNN()(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1_1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv1_2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv2_1 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(FC_INPUTS, 64)
        self.fc2 = nn.Linear(64, 10)

    def feature_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every intermediate volume by layer name; ``"fc2"`` holds the class scores (N, 10).

        Example:
            >>> maps = SmallCNN().feature_maps(torch.zeros(1, 1, 8, 8))
            >>> tuple(maps["relu1_2"].shape), tuple(maps["pool2"].shape)
            ((1, 32, 8, 8), (1, 64, 2, 2))
        """
        if x.ndim != 4 or x.shape[1:] != (1, 8, 8):
            raise ValueError(f"SmallCNN expects digits of shape (N, 1, 8, 8), got {tuple(x.shape)}")
        out: dict[str, torch.Tensor] = {}
        out["conv1_1"] = self.conv1_1(x)
        out["relu1_1"] = F.relu(out["conv1_1"])
        out["conv1_2"] = self.conv1_2(out["relu1_1"])
        out["relu1_2"] = F.relu(out["conv1_2"])
        out["pool1"] = F.max_pool2d(out["relu1_2"], 2)  # (N, 32, 4, 4)
        out["conv2_1"] = self.conv2_1(out["pool1"])
        out["relu2_1"] = F.relu(out["conv2_1"])
        out["pool2"] = F.max_pool2d(out["relu2_1"], 2)  # (N, 64, 2, 2)
        out["fc1"] = self.fc1(out["pool2"].flatten(1))  # (N, 256) -> (N, 64)
        out["relu_fc1"] = F.relu(out["fc1"])
        out["fc2"] = self.fc2(out["relu_fc1"])  # (N, 10)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The class scores (N, 10) of digits ``x`` (N, 1, 8, 8): raw scores, no softmax (the loss applies it)."""
        return self.feature_maps(x)["fc2"]


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The fraction of images in ``x`` (N, 1, 8, 8) whose highest score is their label ``y`` (N,).

    Example:
        >>> accuracy(SmallCNN(), torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)) in (0.0, 1.0)
        True
    """
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


@dataclass(frozen=True)
class TrainResult:
    """A trained :class:`SmallCNN` and its training curve (one entry per epoch)."""

    model: SmallCNN
    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0


def train_epoch(model: nn.Module, optimiser: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, *,
                batch_size: int = 32, generator: torch.Generator | None = None) -> float:
    r"""One epoch of mini-batch training on the cross-entropy: every image once, in a shuffled order.

    The model is switched to training mode first (``model.train()``: layers such as dropout and batch norm
    behave differently in training and in evaluation). The order of the images is
    ``torch.randperm(N, generator=generator)``, cut into batches of ``batch_size`` (the last one holds the
    rest). For each batch: forward pass, mean cross-entropy of the scores, backward pass, one optimiser step,
    and the gradients set back to zero, because ``backward`` *adds* to every ``.grad``.

    Args:
        model: a classifier mapping x to scores (N, classes); it is left in training mode.
        optimiser: a torch optimiser over the model's parameters.
        x: inputs (N, ...), e.g. digits (N, 1, 8, 8).
        y: integer labels (N,).
        batch_size: images per step.
        generator: the random generator of the shuffle; ``None`` uses torch's global one.

    Returns:
        The epoch's mean loss as a float: each batch's mean cross-entropy weighted by its number of images
        (computed before that batch's step).

    Example:
        >>> from nstlab.data import digits
        >>> d, model = digits(limit=64), SmallCNN()
        >>> loss = train_epoch(model, torch.optim.Adam(model.parameters()), d.x_train, d.y_train)
        >>> isinstance(loss, float), model.training
        (True, True)
    """
    if len(x) != len(y) or y.ndim != 1:
        raise ValueError(f"x and y should hold the same number of examples, y of shape (N,); got x of shape "
                         f"{tuple(x.shape)} and y of shape {tuple(y.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    model.train()
    total = 0.0
    for batch in torch.randperm(len(y), generator=generator).split(batch_size):
        batch = batch.to(x.device)
        loss = F.cross_entropy(model(x[batch]), y[batch])  # the mean over the batch
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()  # backward adds to .grad: clear it before the next batch's backward
        total += loss.item() * len(batch)
    return total / len(y)


def train_cnn(data: Split, *, epochs: int = 10, batch_size: int = 32, eta: float = 3e-3, seed: int = 0,
              show_progress: bool | None = None) -> TrainResult:
    r"""Train a :class:`SmallCNN` with Adam on the cross-entropy, one :func:`train_epoch` after another.

    The learning rate starts at :math:`\eta` and decays along a cosine, epoch by epoch: epoch
    :math:`e = 0, 1, \dots` uses :math:`\eta\,(1 + \cos(\pi e / \text{epochs})) / 2`.

    Args:
        data: a :class:`nstlab.data.Split` of digits (N, 1, 8, 8); training runs on its device.
        epochs: passes over the training images.
        batch_size: images per gradient step.
        eta: Adam's learning rate :math:`\eta`.
        seed: seed of the initial weights and of the shuffling.
        show_progress: progress bar on/off; ``None`` shows it except under nbgrader.

    Returns:
        A :class:`TrainResult` with the model (in eval mode), per-epoch mean loss, train and test accuracy,
        and the wall-clock seconds.

    Example:
        >>> from nstlab.data import digits
        >>> r = train_cnn(digits(limit=64), epochs=1, show_progress=False)
        >>> len(r.loss), 0.0 <= r.test_accuracy[-1] <= 1.0
        (1, True)
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be at least 1, got {epochs} and {batch_size}")
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):  # seed the weight initialisation without touching the caller's RNG
        torch.manual_seed(seed)
        model = SmallCNN().to(data.x_train.device)
    gen = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=eta)
    # The learning rate decays towards 0 along a cosine: late epochs settle instead of jumping between minima,
    # so the last epoch's accuracy is also about the best one.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs)
    result = TrainResult(model)
    for _ in progress(range(epochs), desc="training the CNN", disable=None if show_progress is None else not show_progress):
        result.loss.append(train_epoch(model, optimiser, data.x_train, data.y_train, batch_size=batch_size,
                                       generator=gen))
        schedule.step()
        model.eval()  # no dropout or batch norm here, but evaluation belongs in eval mode
        result.train_accuracy.append(accuracy(model, data.x_train, data.y_train))
        result.test_accuracy.append(accuracy(model, data.x_test, data.y_test))
    return TrainResult(model, result.loss, result.train_accuracy, result.test_accuracy,
                       time.perf_counter() - start)
