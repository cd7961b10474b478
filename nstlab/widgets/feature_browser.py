"""Lecture demo: browse VGG's feature maps of a photo, by layer and channel.

All of the chosen layers are computed in one pass when a photo is chosen (about a second at 128 pixels on a
CPU) and kept, so moving the layer or channel sliders only redraws. Each view shows the photo, the chosen
channel's feature map (bright = strong response) and the 16 channels of that layer that respond most
strongly overall. When the network is the untrained fallback, a red banner says so above the pictures.
"""

from __future__ import annotations

import io

import ipywidgets as widgets
import numpy as np
import torch
from PIL import Image

from nstlab import data
from nstlab.device import autocast, channels_last, choose_precision, frozen_weights_in
from nstlab.vgg import LAYER_NAMES, VGGFeatures
from nstlab.weights import Backbone, load_backbone

# Width in pixels at which each picture is shown.
DISPLAY_WIDTH = 256
# How many of the most active channels the overview grid shows (4 x 4).
GRID = 16


def _to_png(array: np.ndarray, width: int = DISPLAY_WIDTH) -> bytes:
    """PNG bytes of an (H, W) map stretched to the grey range, or an (H, W, 3) image in [0, 1], enlarged
    with nearest-neighbour so single neurons stay visible as squares."""
    if array.ndim == 2:
        lo, hi = float(array.min()), float(array.max())
        array = (array - lo) / (hi - lo) if hi > lo else np.zeros_like(array)
    img = Image.fromarray((np.clip(array, 0, 1) * 255).round().astype(np.uint8))
    height = max(1, round(img.height * width / img.width))
    buffer = io.BytesIO()
    img.resize((width, height), Image.NEAREST).save(buffer, format="PNG")
    return buffer.getvalue()


def _tile(maps: torch.Tensor) -> np.ndarray:
    """Lay out maps (K, H, W), each stretched to [0, 1], in a square grid with 1-pixel gaps."""
    K, H, W = maps.shape
    side = int(np.ceil(np.sqrt(K)))
    grid = np.ones((side * (H + 1) - 1, side * (W + 1) - 1))
    for k in range(K):
        m = maps[k].numpy()
        lo, hi = m.min(), m.max()
        r, c = divmod(k, side)
        grid[r * (H + 1) : r * (H + 1) + H, c * (W + 1) : c * (W + 1) + W] = (m - lo) / (hi - lo) if hi > lo else 0
    return grid


class FeatureBrowser(widgets.VBox):
    """The browser's container. Its state (``features``, ``map``, ``top_channels``, ``pretrained``,
    ``note``) is public, so tests and curious students can read it."""

    def __init__(self, *, image: str = "chelsea", size: int = 128, backbone: Backbone | None = None,
                 layers: tuple[str, ...] | None = None, precision: str | None = None):
        backbone = backbone or load_backbone("vgg19", fallback="untrained")
        layers = layers or tuple(name for name in LAYER_NAMES[backbone.arch] if name.startswith("relu"))
        # The precision of a new photo's pass (bf16 where the CPU computes it natively), decided once.
        self.precision = choose_precision(precision, device="cpu").precision
        # Converted once: channels-last, and for bf16 the weights cast once rather than at every photo.
        self.extractor = frozen_weights_in(channels_last(VGGFeatures(layers, backbone=backbone)), self.precision)
        self.pretrained, self.note = backbone.pretrained, backbone.note
        self.size = size
        self._cache: dict[str, dict[str, torch.Tensor]] = {}
        self.image = widgets.Dropdown(options=data.list_images(), value=image, description="photo")
        self.layer = widgets.Dropdown(options=list(layers), value=layers[0], description="layer")
        self.channel = widgets.IntSlider(value=0, min=0, max=0, description="channel")
        self.banner = widgets.HTML()
        self.photo_view = widgets.Image(format="png", width=DISPLAY_WIDTH)
        self.map_view = widgets.Image(format="png", width=DISPLAY_WIDTH)
        self.grid_view = widgets.Image(format="png", width=DISPLAY_WIDTH)
        self.status = widgets.HTML()
        self.image.observe(lambda _: self._new_image(), names="value")
        self.layer.observe(lambda _: self._new_layer(), names="value")
        self.channel.observe(lambda _: self._draw_channel(), names="value")
        controls = widgets.HBox([self.image, self.layer, self.channel])
        views = widgets.HBox([self.photo_view, self.map_view, self.grid_view])
        super().__init__([controls, self.banner, views, self.status])
        if not self.pretrained:
            self.banner.value = f"<p style='color:#b00;font-weight:bold'>{self.note}</p>"
        self._new_image()

    def features_of(self, name: str) -> dict[str, torch.Tensor]:
        """Every browsed layer's features of a built-in photo, shape (C, H', W') each, computed once."""
        if name not in self._cache:
            photo = data.builtin_image(name, size=self.size)
            with torch.no_grad(), autocast(self.precision, photo.device):
                maps = self.extractor(channels_last(photo))  # the photo converted once for all layers
            # Stored in float32 and the usual layout: they are drawn, sorted and read by students.
            self._cache[name] = {layer: f[0].float().contiguous() for layer, f in maps.items()}
            self._cache[name]["photo"] = photo[0]
        return self._cache[name]

    def _new_image(self) -> None:
        self.features = self.features_of(self.image.value)
        self.photo_view.value = _to_png(self.features["photo"].permute(1, 2, 0).numpy())
        self._new_layer()

    def _new_layer(self) -> None:
        f = self.features[self.layer.value]  # (C, H', W')
        self.top_channels = f.mean(dim=(1, 2)).argsort(descending=True)[:GRID].tolist()
        self.grid_view.value = _to_png(_tile(f[self.top_channels]))
        if self.channel.max != f.shape[0] - 1:
            self.channel.max = f.shape[0] - 1  # may clamp the value, which redraws through the observer
        self._draw_channel()

    def _draw_channel(self) -> None:
        f = self.features[self.layer.value]
        c = min(self.channel.value, f.shape[0] - 1)
        self.map = f[c]  # (H', W')
        self.map_view.value = _to_png(self.map.numpy())
        silent = float((f == 0).float().mean())
        self.status.value = (
            f"<p>{self.layer.value}: {f.shape[0]} channels of {f.shape[1]} × {f.shape[2]} positions; channel {c} "
            f"ranges over [{float(self.map.min()):.2f}, {float(self.map.max()):.2f}]; {silent:.0%} of this "
            f"layer's neurons are silent (zero). Right: the {len(self.top_channels)} most active channels "
            f"({', '.join(map(str, self.top_channels[:6]))}, …).</p>"
        )


def feature_browser(*, image: str = "chelsea", size: int = 128, backbone: Backbone | None = None,
                    layers: tuple[str, ...] | None = None, precision: str | None = None) -> FeatureBrowser:
    """Build the feature-map browser for a built-in photo whose long side is ``size`` pixels.

    Args:
        image: the first photo shown (:func:`nstlab.data.list_images`).
        size: long side of the photo fed to VGG.
        backbone: the network; ``None`` loads pretrained VGG19, or the untrained fallback with a banner.
        layers: the layers offered; ``None``: every ``relu`` layer.
        precision: of VGG's pass over a new photo, ``"fp32"``, ``"bf16"`` or ``"auto"`` (default
            ``NSTLAB_PRECISION``, else auto: :func:`nstlab.device.choose_precision`); the maps are kept in float32.

    Example:
        >>> from nstlab.weights import untrained_backbone
        >>> demo = feature_browser(image="astronaut", size=32, backbone=untrained_backbone("vgg16"),
        ...                        layers=("relu1_1", "relu3_1"))
        >>> demo.layer.value = "relu3_1"
        >>> demo.channel.max, tuple(demo.map.shape)
        (255, (8, 8))
    """
    return FeatureBrowser(image=image, size=size, backbone=backbone, layers=layers, precision=precision)
