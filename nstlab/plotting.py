"""Small matplotlib helpers for Part I: 2-D data with a decision boundary, loss curves, a loss surface.

Every helper draws on an ``ax`` the caller made (``fig, ax = plt.subplots(figsize=(5, 4))``) and returns it,
so notebooks and widgets decide the layout and close their own figures. Nothing here runs on import.
"""

from __future__ import annotations

import numpy as np
import torch

# Colours of class 0 and class 1, distinguishable for the common kinds of colour blindness.
CLASS_COLOURS = ("#1f77b4", "#ff7f0e")


def decision_boundary(ax, X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor | float, *,
                      title: str = "", limits: tuple[float, float] = (-0.5, 1.5)):
    r"""Scatter 2-D points coloured by class and draw the line :math:`w_1 x_1 + w_2 x_2 + b = 0`.

    The side where :math:`w \cdot x + b > 0` (predicted 1) is shaded.

    Args:
        ax: a matplotlib Axes.
        X: points, shape (N, 2).
        y: classes 0/1, shape (N,).
        w: weights, shape (2,).
        b: bias.
        title: the axes title.
        limits: the range of both axes.

    Example:
        >>> import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots()
        >>> ax = decision_boundary(ax, torch.eye(2), torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0]), -0.5)
        >>> plt.close(fig)
    """
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"X should have shape (N, 2) to be drawn in the plane; got {tuple(X.shape)}")
    w = torch.as_tensor(w, dtype=torch.float64).detach().cpu().numpy()
    b = float(b)
    lo, hi = limits
    grid = np.linspace(lo, hi, 200)
    g1, g2 = np.meshgrid(grid, grid)
    positive = (w[0] * g1 + w[1] * g2 + b) > 0
    ax.contourf(g1, g2, positive.astype(float), levels=[-0.5, 0.5, 1.5], colors=["white", "#ffe6cc"])
    if np.abs(w).max() > 0:  # all-zero weights have no boundary line
        ax.contour(g1, g2, w[0] * g1 + w[1] * g2 + b, levels=[0.0], colors="k")
    Xn, yn = X.detach().cpu().numpy(), y.detach().cpu().numpy()
    for cls in (0, 1):
        pts = Xn[yn == cls]
        ax.scatter(pts[:, 0], pts[:, 1], s=80, c=CLASS_COLOURS[cls], edgecolors="k", label=f"y = {cls}", zorder=3)
    ax.set(xlim=limits, ylim=limits, xlabel="$x_1$", ylabel="$x_2$", title=title)
    ax.set_aspect("equal")
    return ax


def loss_curve(ax, losses, *, label: str | None = None, log: bool = False, xlabel: str = "epoch"):
    """Plot a sequence of loss values against the epoch (optionally on a log scale).

    Example:
        >>> import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots()
        >>> ax = loss_curve(ax, [3.0, 2.0, 1.5], label="batch", log=True)
        >>> plt.close(fig)
    """
    values = torch.as_tensor(losses, dtype=torch.float64).detach().cpu().numpy()
    ax.plot(np.arange(len(values)), values, label=label)
    if log:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel="E")
    if label is not None:
        ax.legend()
    return ax


def loss_surface(ax, X: torch.Tensor, y: torch.Tensor, *, w_range: tuple[float, float],
                 b_range: tuple[float, float], resolution: int = 60):
    r"""Contour plot of :math:`E(w, b) = \frac12 \sum_n (y_n - w x_n - b)^2` for one input feature.

    Args:
        ax: a matplotlib Axes.
        X: inputs, shape (N, 1).
        y: targets, shape (N,).
        w_range: range of w on the horizontal axis.
        b_range: range of b on the vertical axis.
        resolution: grid points per axis.

    Example:
        >>> import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots()
        >>> ax = loss_surface(ax, torch.arange(3.0)[:, None], torch.ones(3), w_range=(-1, 2), b_range=(-1, 2))
        >>> plt.close(fig)
    """
    if X.ndim != 2 or X.shape[1] != 1:
        raise ValueError(f"X should have shape (N, 1): one feature, so that E(w, b) is a surface; got {tuple(X.shape)}")
    x = X[:, 0].detach().double().cpu().numpy()
    t = y.detach().double().cpu().numpy()
    ws = np.linspace(*w_range, resolution)
    bs = np.linspace(*b_range, resolution)
    Wg, Bg = np.meshgrid(ws, bs)  # (R, R) each
    residual = t[None, None, :] - Wg[..., None] * x[None, None, :] - Bg[..., None]  # (R, R, N)
    E = 0.5 * (residual**2).sum(-1)
    # Levels spaced by quantiles of E show the valley floor as well as the walls; unique() drops repeats
    # that a flat surface would give (contour needs increasing levels).
    levels = np.unique(np.quantile(E, np.linspace(0.0, 0.9, 15) ** 2))
    ax.contour(Wg, Bg, E, levels=levels if len(levels) > 1 else 10, cmap="viridis")
    ax.set(xlabel="w", ylabel="b", xlim=w_range, ylim=b_range)
    return ax


def render_png(fig) -> bytes:
    """Render a matplotlib ``Figure`` to PNG bytes (for an ``ipywidgets.Image``), without pyplot.

    Widgets draw on a ``matplotlib.figure.Figure`` made directly, so no global pyplot state is touched and
    nothing needs closing.

    Example:
        >>> from matplotlib.figure import Figure
        >>> render_png(Figure(figsize=(1, 1)))[:4]
        b'\\x89PNG'
    """
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)  # crisp enough for a projector, small enough to send quickly
    return buffer.getvalue()
