r"""Lecture demo: gradient descent on the loss surface of a linear unit, with the learning rate as a dial.

The data are notebook 02's income example with one feature (experience in decades), so
:math:`E(w, b) = \frac12 \sum_n (y_n - w x_n - b)^2` is a surface over two parameters. The left panel draws
its contours and the path of :func:`nstlab.linear.fit` from :math:`(w, b) = (0, 0)`; the right panel the
loss after every epoch. Controls: the learning rate :math:`\eta` (log scale), batch GD or SGD, the number of
epochs. The contour grid is computed once; a change reruns at most a few thousand tiny steps.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure

from nstlab import linear, plotting

# The view of the loss surface: wide enough to show the start (0, 0) and the minimum near (15, 43).
W_RANGE, B_RANGE = (-10.0, 40.0), (-10.0, 90.0)


class GDExplorer(widgets.VBox):
    """The explorer's container; ``fit`` holds the last run (a :class:`nstlab.linear.Fit`)."""

    def __init__(self, *, n: int = 50, seed: int = 0, eta: float = 2e-3, epochs: int = 30, method: str = "batch"):
        X, y = linear.income_data(n, seed=seed, dtype=torch.float64)
        self.X, self.y = X[:, :1] / 10, y  # (N, 1): experience in decades
        self.w_star, self.b_star = linear.least_squares(self.X, self.y)
        self.eta = widgets.FloatLogSlider(value=eta, base=10, min=-5, max=-1, step=0.05, description="η",
                                          readout_format=".2e")
        self.method = widgets.ToggleButtons(options=["batch", "sgd"], value=method, description="method")
        self.epochs = widgets.IntSlider(value=epochs, min=1, max=200, description="epochs")
        # Natural size, not stretched to the output width (a VBox stretches its children by default).
        self.image = widgets.Image(format="png", layout=widgets.Layout(align_self="flex-start"))
        self.status = widgets.HTML()
        for control in (self.eta, self.method, self.epochs):
            control.observe(lambda _: self.update(), names="value")
        super().__init__([widgets.HBox([self.eta, self.epochs]), self.method, self.image, self.status])
        self.update()

    def update(self) -> None:
        """Rerun gradient descent with the current settings and redraw both panels."""
        with np.errstate(over="ignore", invalid="ignore"):
            self.fit = linear.fit(self.X, self.y, eta=self.eta.value, epochs=self.epochs.value,
                                  method=self.method.value, seed=0)
        fig = Figure(figsize=(9, 3.8))
        ax_surface, ax_loss = fig.subplots(1, 2)
        plotting.loss_surface(ax_surface, self.X, self.y, w_range=W_RANGE, b_range=B_RANGE, resolution=50)
        finite = torch.isfinite(self.fit.ws[:, 0]) & torch.isfinite(self.fit.bs)
        ax_surface.plot(self.fit.ws[finite, 0], self.fit.bs[finite], ".-", color="C3")
        ax_surface.plot(float(self.w_star), float(self.b_star), "k*", ms=12)
        ax_surface.set_title(f"{self.method.value} gradient descent")
        losses = self.fit.losses.clamp(max=1e300)
        plotting.loss_curve(ax_loss, losses[torch.isfinite(losses)], log=True)
        ax_loss.set_title("E after each epoch")
        fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.92, wspace=0.25)  # tight_layout costs a draw
        self.image.value = plotting.render_png(fig)
        final = float(self.fit.losses[-1])
        if not np.isfinite(final) or final > 10 * float(self.fit.losses[0]):
            verdict = "diverging: η is too large"
        else:
            verdict = f"w = {float(self.fit.w[0]):.2f}, b = {float(self.fit.b):.2f}"
        self.status.value = (f"<p>E = {final:.4g} after {self.epochs.value} epochs ({verdict}); minimum "
                             f"E = {float(linear.loss(self.X, self.y, self.w_star, self.b_star)):.4g} at "
                             f"w = {float(self.w_star):.2f}, b = {float(self.b_star):.2f}</p>")


def gd_explorer(*, n: int = 50, seed: int = 0, eta: float = 2e-3, epochs: int = 30,
                method: str = "batch") -> GDExplorer:
    """Build the gradient-descent explorer on ``n`` people of :func:`nstlab.linear.income_data`.

    Example:
        >>> demo = gd_explorer(epochs=5)
        >>> demo.fit.losses.shape
        torch.Size([6])
    """
    return GDExplorer(n=n, seed=seed, eta=eta, epochs=epochs, method=method)
