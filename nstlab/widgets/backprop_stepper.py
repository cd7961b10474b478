r"""Lecture demo: one backpropagation pass through a 2-2-1 sigmoid network, one stage per click.

The stages follow notebook 03: the hidden layer's forward pass (:math:`z^1, a^1`), the output
(:math:`z^2, \hat y, E`), the output error term :math:`\delta^2 = (\hat y - t)\,\sigma'(z^2)`, the hidden
error terms :math:`\delta^1 = (\delta^2 W^2) \odot \sigma'(z^1)`, the gradients
:math:`\partial E/\partial W^l = \delta^l (a^{l-1})^\top`, and the update :math:`W \leftarrow W - \eta\,
\partial E/\partial W`, after which the next pass starts with the new weights. Every number comes from
:mod:`nstlab.mlp`; the diagram writes each node's values and each edge's weight (and gradient).
"""

from __future__ import annotations

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure

from nstlab import data, mlp, plotting

STAGES = ("start", "hidden forward", "output forward", "output δ", "hidden δ", "gradients", "update")
# Node positions in the diagram: inputs, hidden units, output (x, y in axes units).
POSITIONS = ([(0.07, 0.75), (0.07, 0.25)], [(0.5, 0.8), (0.5, 0.2)], [(0.9, 0.5)])
# Where along each edge of a layer its weight is written (0: at the start node, 1: at the end node). The
# first layer's edges cross in the middle, so their labels sit near the inputs, where the edges are apart.
LABEL_AT = (0.3, 0.5)
# Type size of every label in the diagram, large enough to read on a projector.
FONT_SIZE = 11


class BackpropStepper(widgets.VBox):
    """The stepper's container; ``stage`` indexes :data:`STAGES`, ``params`` are the current weights and
    ``values`` holds what the current pass has computed so far (``z1``, ``a1``, ``delta2``, ``grads`` ...)."""

    def __init__(self, *, example: int = 1, eta: float = 2.0, seed: int = 0):
        self.seed = seed
        self.X, self.y = data.logic_gate("xor")
        self.example = widgets.Dropdown(options=[(f"x = {row}", i) for i, row in enumerate(self.X.int().tolist())],
                                        value=example, description="example")
        self.eta = widgets.FloatSlider(value=eta, min=0.1, max=10.0, step=0.1, description="η")
        self.next_button = widgets.Button(description="next stage", icon="step-forward")
        self.reset_button = widgets.Button(description="reset", icon="refresh")
        # Natural size, not stretched to the output width (a VBox stretches its children by default).
        self.image = widgets.Image(format="png", layout=widgets.Layout(align_self="flex-start"))
        self.status = widgets.HTML()
        self.next_button.on_click(lambda _: self.advance())
        self.reset_button.on_click(lambda _: self.reset())
        self.example.observe(lambda _: self._restart_pass(), names="value")
        controls = widgets.HBox([self.example, self.eta, self.next_button, self.reset_button])
        super().__init__([controls, self.image, self.status])
        self.reset()

    def reset(self) -> None:
        """New random weights (from ``seed``) and the start of a pass."""
        params = mlp.init_params([2, 2, 1], seed=self.seed)
        # Non-zero biases make every stage show something worth reading.
        self.params = [(W * 2, torch.full_like(b, 0.1)) for W, b in params]
        self.passes = 0
        self._restart_pass()

    def _restart_pass(self) -> None:
        self.stage = 0
        x = self.X[self.example.value].double()[None]  # (1, 2)
        t = self.y[self.example.value].double().reshape(1, 1)  # (1, 1)
        self.values: dict = {"x": x, "t": t}
        self._show()

    def advance(self) -> None:
        """Compute the next stage (after *update*, start the next pass with the new weights)."""
        if self.stage == len(STAGES) - 1:
            self.passes += 1
            self._restart_pass()
            return
        self.stage += 1
        (W1, b1), (W2, b2) = self.params
        v = self.values
        name = STAGES[self.stage]
        if name == "hidden forward":
            v["z1"] = v["x"] @ W1.T + b1
            v["a1"] = mlp.sigmoid(v["z1"])
        elif name == "output forward":
            v["z2"] = v["a1"] @ W2.T + b2
            v["a2"] = mlp.sigmoid(v["z2"])
            v["E"] = float(0.5 * ((v["t"] - v["a2"]) ** 2).sum())
        elif name == "output δ":
            v["delta2"] = mlp.output_delta(v["z2"], v["a2"], v["t"])
        elif name == "hidden δ":
            v["delta1"] = mlp.hidden_delta(v["delta2"], W2, v["z1"])
        elif name == "gradients":
            v["grads"] = [(v["delta1"].T @ v["x"], v["delta1"].sum(0)), (v["delta2"].T @ v["a1"], v["delta2"].sum(0))]
        elif name == "update":
            self.params = mlp.update(self.params, v["grads"], eta=self.eta.value)
            v["E_after"] = float(mlp.loss(self.params, v["x"], v["t"]))
        self._show()

    def _explain(self) -> str:
        v, name = self.values, STAGES[self.stage]
        fmt = lambda t: ", ".join(f"{val:.3f}" for val in t.flatten().tolist())  # noqa: E731
        lines = {
            "start": f"pass {self.passes + 1}: input x = ({fmt(v['x'])}), target t = {fmt(v['t'])}. Press "
                     "<i>next stage</i>.",
            "hidden forward": f"z¹ = W¹x + b¹ = ({fmt(v.get('z1', torch.zeros(0)))}), "
                              f"a¹ = σ(z¹) = ({fmt(v.get('a1', torch.zeros(0)))})",
            "output forward": f"z² = W²a¹ + b² = {fmt(v.get('z2', torch.zeros(0)))}, ŷ = σ(z²) = "
                              f"{fmt(v.get('a2', torch.zeros(0)))}, E = ½(t − ŷ)² = {v.get('E', 0):.4f}",
            "output δ": f"δ² = (ŷ − t)·σ'(z²) = {fmt(v.get('delta2', torch.zeros(0)))}",
            "hidden δ": f"δ¹ = (δ² W²) ⊙ σ'(z¹) = ({fmt(v.get('delta1', torch.zeros(0)))})",
            "gradients": "∂E/∂W² = δ² a¹ᵀ, ∂E/∂W¹ = δ¹ xᵀ, ∂E/∂b = δ (gradients in red on the edges)",
            "update": f"W ← W − η ∂E/∂W with η = {self.eta.value:g}: E on this example went from "
                      f"{v.get('E', 0):.4f} to {v.get('E_after', 0):.4f}",
        }
        return lines[name]

    def _show(self) -> None:
        fig = Figure(figsize=(8, 4.8))
        ax = fig.add_axes((0.01, 0.01, 0.98, 0.9))
        ax.set_axis_off()
        ax.set(xlim=(0, 1), ylim=(0, 1))
        ax.set_title(f"stage {self.stage}: {STAGES[self.stage]}", fontsize=FONT_SIZE + 3)
        v = self.values
        grads = v.get("grads")
        for layer, (W, _) in enumerate(self.params):
            for j, end in enumerate(POSITIONS[layer + 1]):
                for i, start in enumerate(POSITIONS[layer]):
                    ax.plot([start[0], end[0]], [start[1], end[1]], color="0.6", zorder=1)
                    at = LABEL_AT[layer]
                    mx, my = start[0] + at * (end[0] - start[0]), start[1] + at * (end[1] - start[1])
                    label = f"{float(W[j, i]):.2f}"
                    if grads is not None and STAGES[self.stage] == "gradients":
                        label += f"\n∂ {float(grads[layer][0][j, i]):+.3f}"
                    ax.text(mx, my, label, fontsize=FONT_SIZE, ha="center", va="center", gid="weight",
                            color="C3" if "∂" in label else "k",
                            bbox={"fc": "white", "ec": "none", "alpha": 0.85, "pad": 1}, zorder=2)
        node_text = [[f"x={float(val):.0f}" for val in v["x"][0]], [], []]
        for layer, (z_key, a_key, d_key) in enumerate((("z1", "a1", "delta1"), ("z2", "a2", "delta2")), start=1):
            for j in range(len(POSITIONS[layer])):
                parts = []
                if z_key in v:
                    parts += [f"z={float(v[z_key][0, j]):.2f}", f"a={float(v[a_key][0, j]):.2f}"]
                if d_key in v:
                    parts.append(f"δ={float(v[d_key][0, j]):+.3f}")
                node_text[layer].append("\n".join(parts))
        for layer, nodes in enumerate(POSITIONS):
            for j, (px, py) in enumerate(nodes):
                ax.scatter([px], [py], s=5000, c="#dbe9f6", edgecolors="k", zorder=3)
                ax.text(px, py, node_text[layer][j], fontsize=FONT_SIZE, ha="center", va="center", gid="node", zorder=4)
        self.figure = fig  # kept so tests can measure where the labels landed
        self.image.value = plotting.render_png(fig)
        self.status.value = f"<p>{self._explain()}</p>"


def backprop_stepper(*, example: int = 1, eta: float = 2.0, seed: int = 0) -> BackpropStepper:
    """Build the backprop step-through on XOR example ``example`` (0..3) with learning rate ``eta``.

    Example:
        >>> demo = backprop_stepper()
        >>> for _ in range(3):
        ...     demo.advance()
        >>> demo.stage, "delta2" in demo.values
        (3, True)
    """
    return BackpropStepper(example=example, eta=eta, seed=seed)
