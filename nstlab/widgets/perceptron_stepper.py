r"""Lecture demo: the perceptron rule, one example at a time, with the decision boundary moving.

Each press of *step* shows the perceptron the next training example (in order, wrapping around), applies
:math:`w \leftarrow w + \eta (y - \hat y) x,\ b \leftarrow b + \eta (y - \hat y)` with
:func:`nstlab.perceptron.update`, and redraws the boundary with the example just used ringed (red when it
was wrong and the line moved, green when it was right). *epoch* does a whole pass; *reset* returns to zero
weights. Changing the gate or the learning rate resets.

The cycle starts at the first example the zero weights get wrong (they answer 0 everywhere, so for AND that
is the last one, ``x = (1, 1)``), so the very first click moves the line; starting at ``x = (0, 0)`` the
first clicks of a lecture would change nothing. An epoch is still every example once, in order from there.
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
        wrong = (perceptron.predict(self.X, self.w, self.b) != self.y).nonzero().flatten().tolist()
        self.start = wrong[0] if wrong else 0  # where each epoch starts: see the module docstring
        self.index, self.epoch, self.last, self.last_wrong = self.start, 0, None, False
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
        self.last, self.last_wrong = self.index, y_hat != float(y)
        self.index = (self.index + 1) % len(self.y)
        if self.index == self.start:
            self.epoch += 1
        self._draw(line)

    def run_epoch(self) -> None:
        """Step through the rest of the current epoch (all N examples from the start of one)."""
        for _ in range(len(self.y) - (self.index - self.start) % len(self.y)):
            self.step()

    def _draw(self, message: str) -> None:
        fig = Figure(figsize=(4.4, 4.4), layout="constrained")  # constrained: room for large (projector) type
        ax = fig.add_subplot()
        wrong = int((perceptron.predict(self.X, self.w, self.b) != self.y).sum())
        plotting.decision_boundary(ax, self.X, self.y, self.w, self.b,
                                   title=f"{self.gate.value.upper()}: {wrong} of {len(self.y)} wrong")
        if self.last is not None:
            ax.scatter(*self.X[self.last].tolist(), s=350, facecolors="none", linewidths=3, zorder=4,
                       edgecolors="red" if self.last_wrong else "green")
        # The classes' colours explained; above the top row of points, which sit at x2 = 1.
        ax.legend(loc="upper center", ncols=2, handletextpad=0.2, columnspacing=0.8)
        self.figure = fig  # kept so tests can check what was drawn (the legend, ...)
        self.image.value = plotting.render_png(fig)
        self.status.value = f"<p>{message}</p>"


def perceptron_stepper(*, gate: str = "and", eta: float = perceptron.DEFAULT_ETA) -> PerceptronStepper:
    """Build the perceptron stepper for ``gate`` (``"and"``, ``"or"``, ``"nand"`` or ``"xor"``).

    Example:
        >>> demo = perceptron_stepper(gate="or")  # zero weights get x = (0, 1) wrong first
        >>> demo.step(); demo.index, [round(v, 3) for v in demo.w.tolist()]
        (2, [0.0, 0.1])
    """
    return PerceptronStepper(gate=gate, eta=eta)
