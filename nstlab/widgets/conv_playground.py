r"""Lecture demo: a 3 × 3 convolution on a real photo, with preset or hand-typed kernels, stride and padding.

The photo is turned grey (one channel), convolved with :func:`nstlab.cnn.conv2d` using the kernel in the
3 × 3 grid, and shown next to the input. Choosing a preset fills the grid; typing into the grid makes the
kernel "custom". The status line gives the output size from
:math:`H_\text{out} = \lfloor (H + 2P - k)/s \rfloor + 1`. Both images are drawn at the same width, so a
larger stride shows up as coarser pixels. One update takes a few milliseconds at 256 pixels.
"""

from __future__ import annotations

import io
import time

import ipywidgets as widgets
import numpy as np
import torch
from PIL import Image

from nstlab import cnn, data

# Classic hand-made 3 × 3 kernels; each is a row-major list of rows.
PRESETS = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "box blur": [[1 / 9] * 3] * 3,
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "Sobel x (vertical edges)": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "Sobel y (horizontal edges)": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "Laplacian (all edges)": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "emboss": [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
}
CUSTOM = "custom"
# Width in pixels at which both images are shown: large enough for a projector, small enough for a laptop.
DISPLAY_WIDTH = 320


def _png(channel: torch.Tensor) -> bytes:
    """PNG bytes of a single channel (H, W), stretched to the full grey range for display."""
    lo, hi = float(channel.min()), float(channel.max())
    scaled = (channel - lo) / (hi - lo) if hi > lo else torch.zeros_like(channel)
    buffer = io.BytesIO()
    Image.fromarray((scaled.numpy() * 255).round().astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


class ConvPlayground(widgets.VBox):
    """The playground's container. Its state (``photo``, ``kernel``, ``output``, ``seconds``) is public, so
    tests and curious students can read it."""

    def __init__(self, *, image: str = "astronaut", preset: str = "Sobel x (vertical edges)", size: int = 128):
        if preset not in PRESETS:
            raise ValueError(f"preset {preset!r} is unknown; choose one of {', '.join(PRESETS)}")
        self.size = size
        self._photos: dict[str, torch.Tensor] = {}
        self._filling = False  # True while a preset writes the grid, so the grid does not call it "custom"
        self.image = widgets.Dropdown(options=data.list_images(), value=image, description="photo")
        self.preset = widgets.Dropdown(options=[*PRESETS, CUSTOM], value=preset, description="kernel")
        self.stride = widgets.IntSlider(value=1, min=1, max=4, description="stride s")
        self.padding = widgets.IntSlider(value=1, min=0, max=3, description="padding P")
        self.cells = [widgets.FloatText(value=0.0, step=0.1, layout=widgets.Layout(width="70px")) for _ in range(9)]
        grid = widgets.GridBox(self.cells, layout=widgets.Layout(grid_template_columns="repeat(3, 74px)"))
        self.input_view = widgets.Image(format="png", width=DISPLAY_WIDTH)
        self.output_view = widgets.Image(format="png", width=DISPLAY_WIDTH)
        self.status = widgets.HTML()
        self.image.observe(lambda _: self.update(), names="value")
        self.preset.observe(lambda _: self._apply_preset(), names="value")
        for control in (self.stride, self.padding):
            control.observe(lambda _: self.update(), names="value")
        for cell in self.cells:
            cell.observe(self._edited, names="value")
        controls = widgets.VBox([self.image, self.preset, self.stride, self.padding, widgets.Label("kernel w:"), grid])
        views = widgets.HBox([self.input_view, self.output_view])
        super().__init__([widgets.HBox([controls, views]), self.status])
        self._apply_preset()

    def _apply_preset(self) -> None:
        if self.preset.value == CUSTOM:
            return
        self._filling = True
        for cell, value in zip(self.cells, sum(PRESETS[self.preset.value], []), strict=True):
            cell.value = float(value)
        self._filling = False
        self.update()

    def _edited(self, _change) -> None:
        if self._filling:
            return
        if self.preset.value != CUSTOM:
            self.preset.value = CUSTOM  # does not refill the grid: CUSTOM has no preset values
        self.update()

    def photo_of(self, name: str) -> torch.Tensor:
        """The grey photo (1, 1, H, W), loaded once and cached."""
        if name not in self._photos:
            self._photos[name] = data.builtin_image(name, size=self.size).mean(dim=1, keepdim=True)
        return self._photos[name]

    def update(self) -> None:
        """Convolve the chosen photo with the grid's kernel and redraw both images and the status line."""
        start = time.perf_counter()
        self.photo = self.photo_of(self.image.value)
        self.kernel = torch.tensor([cell.value for cell in self.cells], dtype=torch.float32).reshape(3, 3)
        s, P = self.stride.value, self.padding.value
        self.output = cnn.conv2d(self.photo, self.kernel[None, None], stride=s, padding=P)  # (1, 1, H_out, W_out)
        self.input_view.value = _png(self.photo[0, 0])
        self.output_view.value = _png(self.output[0, 0])
        self.seconds = time.perf_counter() - start
        H, W = self.photo.shape[2:]
        H_out, W_out = self.output.shape[2:]
        self.status.value = (
            f"<p>input {H} × {W}, kernel 3 × 3, P = {P}, s = {s} → output ⌊({H} + 2·{P} − 3)/{s}⌋ + 1 = {H_out} "
            f"by ⌊({W} + 2·{P} − 3)/{s}⌋ + 1 = {W_out}; output range [{float(self.output.min()):.2f}, "
            f"{float(self.output.max()):.2f}] shown stretched to black…white; {self.seconds * 1e3:.0f} ms</p>"
        )


def conv_playground(*, image: str = "astronaut", preset: str = "Sobel x (vertical edges)",
                    size: int = 128) -> ConvPlayground:
    """Build the convolution playground on a built-in photo whose long side is ``size`` pixels.

    Example:
        >>> demo = conv_playground(size=64)
        >>> demo.stride.value = 2
        >>> tuple(demo.output.shape)
        (1, 1, 32, 32)
    """
    return ConvPlayground(image=image, preset=preset, size=size)
