r"""Lecture demo: the perceptron rule, one example at a time, with the decision boundary moving.

Each press of *step* shows the perceptron the next training example (in order, wrapping around), applies
:math:`w \leftarrow w + \eta (y - \hat y) x,\ b \leftarrow b + \eta (y - \hat y)` with
:func:`nstlab.perceptron.update`, and redraws the boundary with the example just used ringed in red.
*epoch* does a whole pass; *reset* returns to zero weights. Changing the gate or the learning rate resets.
"""

from __future__ import annotations

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure

from nstlab import data, perceptron, plotting


class PerceptronStepper(widgets.VBox):
    """The stepper's container; its state (``w``, ``b``, ``index``, ``epoch``, ``history``) is public so tests
    and curious students can read it."""

    def __init__(self, *, gate: str = "and", eta: float = perceptron.DEFAULT_ETA):
        self.gate = widgets.Dropdown(options=list(data.LOGIC_GATES), value=gate, description="gate")
        self.eta = widgets.FloatLogSlider(value=eta, base=10, min=-2, max=1, step=0.1, description="η")
        self.step_button = widgets.Button(description="step", icon="step-forward")
        self.epoch_button = widgets.Button(description="epoch", icon="fast-forward")
        self.reset_button = widgets.Button(description="reset", icon="refresh")
        # Natural size, not stretched to the output width (a VBox stretches its children by default).
        self.image = widgets.Image(format="png", layout=widgets.Layout(align_self="flex-start"))
        self.status = widgets.HTML()
        self.step_button.on_click(lambda _: self.step())
        self.epoch_button.on_click(lambda _: self.run_epoch())
        self.reset_button.on_click(lambda _: self.reset())
        self.gate.observe(lambda _: self.reset(), names="value")
        self.eta.observe(lambda _: self.reset(), names="value")
        controls = widgets.HBox([self.gate, self.eta])
        buttons = widgets.HBox([self.step_button, self.epoch_button, self.reset_button])
        super().__init__([controls, buttons, self.image, self.status])
        self.reset()

    def reset(self) -> None:
        """Zero weights, the first example next, and a fresh drawing."""
        self.X, self.y = data.logic_gate(self.gate.value)
        self.w, self.b = torch.zeros(2), torch.zeros(())
        self.index, self.epoch, self.last = 0, 0, None
        self.history: list[str] = []
        self._draw("zero weights: the perceptron says 0 everywhere (z = 0 is not > 0)")

    def step(self) -> None:
        """Apply the rule to the next example and redraw."""
        x, y = self.X[self.index], self.y[self.index]
        y_hat = float(perceptron.step(self.w @ x + self.b))
        self.w, self.b = perceptron.update(x, y, self.w, self.b, eta=self.eta.value)
        verdict = "right, no change" if y_hat == float(y) else f"wrong, so w += {self.eta.value:.3g}·({float(y) - y_hat:+.0f})·x"
        line = (f"epoch {self.epoch + 1}, x = {x.tolist()}: y = {float(y):.0f}, ŷ = {y_hat:.0f} ({verdict}) → "
                f"w = ({self.w[0]:.2f}, {self.w[1]:.2f}), b = {float(self.b):.2f}")
        self.history.append(line)
        self.last = self.index
        self.index = (self.index + 1) % len(self.y)
        if self.index == 0:
            self.epoch += 1
        self._draw(line)

    def run_epoch(self) -> None:
        """Step through the rest of the current epoch (all N examples from the start of one)."""
        for _ in range(len(self.y) - self.index):
            self.step()

    def _draw(self, message: str) -> None:
        fig = Figure(figsize=(4, 4))
        ax = fig.add_subplot()
        wrong = int((perceptron.predict(self.X, self.w, self.b) != self.y).sum())
        plotting.decision_boundary(ax, self.X, self.y, self.w, self.b,
                                   title=f"{self.gate.value.upper()}: {wrong} of {len(self.y)} wrong")
        if self.last is not None:
            ax.scatter(*self.X[self.last].tolist(), s=300, facecolors="none", edgecolors="red", linewidths=2, zorder=4)
        self.image.value = plotting.render_png(fig)
        self.status.value = f"<p>{message}</p>"


def perceptron_stepper(*, gate: str = "and", eta: float = perceptron.DEFAULT_ETA) -> PerceptronStepper:
    """Build the perceptron stepper for ``gate`` (``"and"``, ``"or"``, ``"nand"`` or ``"xor"``).

    Example:
        >>> demo = perceptron_stepper(gate="or")
        >>> demo.step(); demo.index, demo.w.tolist()
        (1, [0.0, 0.0])
    """
    return PerceptronStepper(gate=gate, eta=eta)
